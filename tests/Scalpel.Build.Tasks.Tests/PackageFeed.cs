using System.Globalization;
using System.Reflection;

namespace Scalpel.Tests;

/// <summary>
/// Packs Scalpel.Build and Scalpel.Tool once per test run, with a version unique to the run, into a feed in a
/// temporary folder outside the repository (with a space in its path, to exercise quoting). Consumers restore
/// from that feed alone into an isolated packages folder. The packing builds into its own artifacts folder,
/// so it neither races nor disturbs the solution build that runs these tests.
/// </summary>
public sealed class PackageFeed : IDisposable
{
    public string Root { get; }
    public string Feed => Path.Combine(Root, "feed");
    public string Packages => Path.Combine(Root, "packages");
    public string Version { get; }
    public IReadOnlyDictionary<string, string> Environment { get; }

    private readonly Lazy<string> _toolPath;

    public PackageFeed()
    {
        Root = Path.Combine(Path.GetTempPath(), "scalpel e2e " + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Root);
        Version = "0.0.0-e2e." + DateTime.UtcNow.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture) + "." + Random.Shared.Next(1000, 9999);
        Environment = new Dictionary<string, string> { ["NUGET_PACKAGES"] = Packages };

        // Consumers see only this feed and none of the repository's (or /tmp's) build customisations.
        File.WriteAllText(Path.Combine(Root, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="scalpel-e2e" value="{Feed}" />
              </packageSources>
            </configuration>
            """);
        foreach (var name in new[] { "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props" })
            File.WriteAllText(Path.Combine(Root, name), "<Project />\n");

        string configuration = typeof(PackageFeed).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Release";
        foreach (var project in new[] { "src/Scalpel.Build.Tasks/Scalpel.Build.Tasks.csproj", "src/Scalpel.Tool/Scalpel.Tool.csproj" })
        {
            Dotnet.Run(TestData.RepoRoot, null, "pack", Path.Combine(TestData.RepoRoot, project), "-c", configuration, "-o", Feed,
                "--artifacts-path", Path.Combine(Root, "artifacts"), "-p:ScalpelPackageVersion=" + Version, "-nodeReuse:false").Succeeded("dotnet pack " + project);
        }
        _toolPath = new(InstallTool);
    }

    /// <summary>The folder the Scalpel.Tool package is installed into (once), as `dotnet tool install --tool-path` does.</summary>
    public string ToolPath => _toolPath.Value;

    private string InstallTool()
    {
        string path = Path.Combine(Root, "tools");
        Dotnet.Run(Root, Environment, "tool", "install", "Scalpel.Tool", "--tool-path", path, "--add-source", Feed, "--version", Version)
            .Succeeded("dotnet tool install");
        return path;
    }

    /// <summary>Environment in which `dotnet scalpel` finds the installed tool, as after `dotnet tool install -g`.</summary>
    public IReadOnlyDictionary<string, string> ToolEnvironment => new Dictionary<string, string>(Environment)
    {
        ["PATH"] = ToolPath + Path.PathSeparator + System.Environment.GetEnvironmentVariable("PATH"),
    };

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

[CollectionDefinition(Name)]
public sealed class PackageFeedCollection : ICollectionFixture<PackageFeed>
{
    public const string Name = "package feed";
}
