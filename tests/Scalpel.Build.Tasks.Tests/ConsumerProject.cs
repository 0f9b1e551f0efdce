namespace Scalpel.Tests;

/// <summary>A console project in the feed's temporary folder that references Scalpel.Build and declares ScalpelModel items.</summary>
public sealed class ConsumerProject
{
    public string Directory { get; }
    public string ProjectFile { get; }
    private readonly PackageFeed _feed;

    public ConsumerProject(PackageFeed feed, string name, string items, string program = """Console.WriteLine("consumer");""")
    {
        _feed = feed;
        Directory = Path.Combine(feed.Root, name);
        System.IO.Directory.CreateDirectory(Directory);
        ProjectFile = Path.Combine(Directory, name + ".csproj");
        WriteItems(items);
        File.WriteAllText(Path.Combine(Directory, "Program.cs"), program);
    }

    /// <summary>Rewrites the project file with other ScalpelModel items (as a user editing it would).</summary>
    public void WriteItems(string items) => File.WriteAllText(ProjectFile, $"""
        <Project Sdk="Microsoft.NET.Sdk">
          <PropertyGroup>
            <OutputType>Exe</OutputType>
            <TargetFramework>net10.0</TargetFramework>
            <ImplicitUsings>enable</ImplicitUsings>
            <Nullable>enable</Nullable>
            <RootNamespace>Consumer</RootNamespace>
          </PropertyGroup>
          <ItemGroup>
            <PackageReference Include="Scalpel.Build" Version="{_feed.Version}" />
          </ItemGroup>
          <ItemGroup>
            {items}
          </ItemGroup>
        </Project>
        """);

    /// <summary>Copies a file from the repository's fixtures into the project folder (relative paths, as users write them).</summary>
    public string AddFixture(string fixture, string relativePath)
    {
        var path = Path.Combine(Directory, relativePath);
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.Copy(TestData.Fixture(fixture), path, overwrite: true);
        return path;
    }

    public Dotnet.Result Build(params string[] extra) => BuildConfiguration("Release", extra);

    public Dotnet.Result BuildConfiguration(string configuration, params string[] extra) =>
        Dotnet.Run(Directory, _feed.Environment, ["build", ProjectFile, "-c", configuration, "-nodeReuse:false", .. extra]);

    public Dotnet.Result Clean() => Dotnet.Run(Directory, _feed.Environment, "clean", ProjectFile, "-c", "Release", "-nodeReuse:false");

    public string GeneratedDirectory => GeneratedDirectoryOf("Release");

    public string GeneratedDirectoryOf(string configuration) => Path.Combine(Directory, "obj", configuration, "net10.0", "scalpel");

    public string OutputDirectory => OutputDirectoryOf("Release");

    public string OutputDirectoryOf(string configuration) => Path.Combine(Directory, "bin", configuration, "net10.0");

    public Dotnet.Result RunApp(params string[] args) => RunAppIn("Release", args);

    public Dotnet.Result RunAppIn(string configuration, params string[] args) =>
        Dotnet.Run(Directory, _feed.Environment, [Path.Combine(OutputDirectoryOf(configuration), Path.GetFileNameWithoutExtension(ProjectFile) + ".dll"), .. args]);
}
