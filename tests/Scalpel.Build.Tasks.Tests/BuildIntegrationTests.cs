using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Scalpel.Pruning.Data;

namespace Scalpel.Tests;

/// <summary>
/// The packages as users meet them: `dotnet build` of projects with ScalpelModel items, restored from a local
/// feed, and the dotnet-scalpel tool installed from it. Each test has its own consumer project.
/// </summary>
[Collection(PackageFeedCollection.Name)]
public sealed class BuildIntegrationTests(PackageFeed feed)
{
    private const string Pruning = "Scalpel: pruning ";
    private const string SkippedAsUpToDate = "Skipping target \"_ScalpelPrune\" because all output files are up-to-date";

    /// <summary>Prints one line of logits per image of a raw float32 file, with round-trip formatting.</summary>
    private static string ClassifierProgram(string fullName) => $$"""
        using System.Globalization;
        using System.Runtime.InteropServices;
        var model = new {{fullName}}();
        var images = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(args[0])).ToArray();
        var logits = new float[{{fullName}}.OutputSize];
        for (int i = 0; i < images.Length / {{fullName}}.InputSize; i++)
        {
            model.Run(images.AsSpan(i * {{fullName}}.InputSize, {{fullName}}.InputSize), logits);
            Console.WriteLine(string.Join(" ", logits.Select(v => v.ToString("R", CultureInfo.InvariantCulture))));
        }
        """;

    private static string Format(ReadOnlySpan<float> logits) => string.Join(" ", logits.ToArray().Select(v => v.ToString("R", CultureInfo.InvariantCulture)));

    private (string Path, float[] Floats, int Count) Images(int count)
    {
        var x = NpyFile.Read(TestData.Fixture("data/fmnist-test-1000-x.npy"));
        var floats = x.Floats![..(count * 784)];
        var path = Path.Combine(feed.Root, $"images-{Guid.NewGuid():N}.f32");
        File.WriteAllBytes(path, MemoryMarshal.AsBytes(floats.AsSpan()).ToArray());
        return (path, floats, count);
    }

    [Fact]
    public void BuiltModelPredictsExactlyAsTheCommandLinesOutput()
    {
        const string item = """<ScalpelModel Include="models/mlp.onnx" HardwareTarget="x64-avx2" ClassName="FashionMlp" Namespace="Consumer.Models" CalibrationData="data/calib.npy" ValidationData="data/val.npy" ValidationLabels="data/val-labels.npy" CopyToOutputDirectory="PreserveNewest" />""";
        var app = new ConsumerProject(feed, "classifier", item, ClassifierProgram("Consumer.Models.FashionMlp"));
        var model = app.AddFixture("mlp.onnx", "models/mlp.onnx");
        var calib = app.AddFixture("data/fmnist-calib-512-x.npy", "data/calib.npy");
        var val = app.AddFixture("data/fmnist-test-1000-x.npy", "data/val.npy");
        var labels = app.AddFixture("data/fmnist-test-1000-y.npy", "data/val-labels.npy");

        var build = app.Build().Succeeded("dotnet build");
        Assert.Contains(Pruning + "models/mlp.onnx for target x64-avx2 into FashionMlp", build.Output);
        var images = Images(200);
        var predicted = app.RunApp(images.Path).Succeeded("the consumer").Output.Trim().Split('\n').Select(l => l.Trim()).ToArray();
        Assert.Equal(images.Count, predicted.Length);

        // The same model, target and options by hand, with the installed tool.
        var cliOut = Path.Combine(feed.Root, "cli-" + Guid.NewGuid().ToString("N")[..8]);
        Dotnet.Run(feed.Root, feed.ToolEnvironment, "scalpel", "prune", model, "--target", "x64-avx2", "--out", cliOut, "--namespace", "Consumer.Models",
            "--class", "FashionMlp", "--calibration", calib, "--validation", val, "--labels", labels, "--measure", "false").Succeeded("dotnet scalpel prune");
        foreach (var file in new[] { "FashionMlp.g.cs", "FashionMlp.bin", "FashionMlp.onnx" })
            Assert.True(File.ReadAllBytes(Path.Combine(cliOut, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(app.GeneratedDirectory, file))), $"{file} differs between the build and the command line");
        Assert.True(File.Exists(Path.Combine(app.OutputDirectory, "FashionMlp.onnx")), "CopyToOutputDirectory did not copy the pruned model");

        // Same source and weights, IEEE arithmetic with explicit FMA: the logits must match bit for bit.
        var run = GeneratedAssembly.Compile("Cli", [File.ReadAllText(Path.Combine(cliOut, "FashionMlp.g.cs"))])
            .Instantiate("Consumer.Models.FashionMlp", File.ReadAllBytes(Path.Combine(cliOut, "FashionMlp.bin")));
        var logits = new float[10];
        for (int i = 0; i < images.Count; i++)
        {
            run(images.Floats.AsSpan(i * 784, 784), logits, 1);
            Assert.Equal(Format(logits), predicted[i]);
        }
    }

    [Fact]
    public void RebuildIsANoOpUntilAnInputOrOptionChangesAndCleanRemovesTheOutputs()
    {
        string Item(string drop) => $"""<ScalpelModel Include="models/lenet5.onnx" HardwareTarget="x64-sse" MaxAccuracyDrop="{drop}" />""";
        var app = new ConsumerProject(feed, "incremental", Item("0.5"), ClassifierProgram("Consumer.Lenet5"));
        var model = app.AddFixture("lenet5.onnx", "models/lenet5.onnx");
        var generated = Path.Combine(app.GeneratedDirectory, "Lenet5.g.cs");

        var build = app.Build().Succeeded("first build").Output;
        Assert.Contains(Pruning + "models/lenet5.onnx", build);
        Assert.Contains($"{app.ProjectFile} : Scalpel warning SCALPEL2001: ScalpelModel 'models/lenet5.onnx': no calibration or validation data", build);
        var first = File.GetLastWriteTimeUtc(generated);

        var second = app.Build("-v:detailed").Succeeded("second build").Output;
        Assert.Contains(SkippedAsUpToDate, second);
        Assert.DoesNotContain(Pruning, second);
        Assert.Equal(first, File.GetLastWriteTimeUtc(generated));

        File.SetLastWriteTimeUtc(model, DateTime.UtcNow);
        Assert.Contains(Pruning + "models/lenet5.onnx", app.Build().Succeeded("build after touching the model").Output);

        app.WriteItems(Item("1.0"));
        Assert.Contains(Pruning + "models/lenet5.onnx", app.Build().Succeeded("build after changing MaxAccuracyDrop").Output);
        Assert.Contains("--max-accuracy-drop 1", File.ReadAllText(Path.Combine(app.GeneratedDirectory, "Lenet5.stamp")));
        Assert.Contains(SkippedAsUpToDate, app.Build("-v:detailed").Succeeded("build after the option change").Output);

        app.Clean().Succeeded("dotnet clean");
        Assert.Empty(Directory.Exists(app.GeneratedDirectory) ? Directory.GetFiles(app.GeneratedDirectory) : []);
    }

    [Fact]
    public void DesignTimeBuildNeverPrunesYetSeesTheCodeAnEarlierBuildMade()
    {
        var app = new ConsumerProject(feed, "design-time", """<ScalpelModel Include="models/lenet5.onnx" />""", ClassifierProgram("Consumer.Lenet5"));
        app.AddFixture("lenet5.onnx", "models/lenet5.onnx");
        var generated = Path.Combine(app.GeneratedDirectory, "Lenet5.g.cs");
        // What an IDE asks for: the Compile items after a design-time build, which must not run the pipeline.
        Dotnet.Result DesignTimeCompileItems() => Dotnet.Run(app.Directory, feed.Environment, "msbuild", app.ProjectFile, "-restore", "-nodeReuse:false",
            "-p:Configuration=Release", "-p:DesignTimeBuild=true", "-t:ScalpelGenerate", "-getItem:Compile").Succeeded("design-time build");

        Assert.DoesNotContain("Lenet5.g.cs", DesignTimeCompileItems().Output);
        Assert.False(File.Exists(generated), "a design-time build ran the pipeline");

        app.Build().Succeeded("dotnet build");
        var built = File.GetLastWriteTimeUtc(generated);
        Assert.Contains("Lenet5.g.cs", DesignTimeCompileItems().Output);
        Assert.Equal(built, File.GetLastWriteTimeUtc(generated));
    }

    public static TheoryData<string, string, string> BadItems => new()
    {
        { "missing-model", """<ScalpelModel Include="models/absent.onnx" />""", "SCALPEL1001" },
        { "corrupt-model", """<ScalpelModel Include="models/corrupt.onnx" />""", "SCALPEL1002" },
        { "unknown-target", """<ScalpelModel Include="models/mlp.onnx" HardwareTarget="z80" />""", "SCALPEL1004" },
        { "missing-data", """<ScalpelModel Include="models/mlp.onnx" CalibrationData="data/absent.npy" />""", "SCALPEL1005" },
        { "missing-training-data", """<ScalpelModel Include="models/mlp.onnx" TrainingData="data/absent.npy" TrainingLabels="data/absent-labels.npy" />""", "SCALPEL1005" },
        { "labels-without-training-data", """<ScalpelModel Include="models/mlp.onnx" TrainingLabels="models/mlp.onnx" />""", "SCALPEL1006" },
        { "bad-number", """<ScalpelModel Include="models/mlp.onnx" MaxAccuracyDrop="lots" />""", "SCALPEL1006" },
        { "bad-class-name", """<ScalpelModel Include="models/mlp.onnx" ClassName="not valid" />""", "SCALPEL1006" },
    };

    [Theory]
    [MemberData(nameof(BadItems))]
    public void BadItemFailsWithItsCodeOnTheProjectFile(string name, string item, string code)
    {
        var app = new ConsumerProject(feed, "bad-" + name, item);
        app.AddFixture("mlp.onnx", "models/mlp.onnx");
        File.WriteAllBytes(Path.Combine(app.Directory, "models", "corrupt.onnx"), File.ReadAllBytes(TestData.Fixture("mlp.onnx"))[..4000]);

        var build = app.Build();
        Assert.NotEqual(0, build.ExitCode);
        Assert.Contains($"{app.ProjectFile} : Scalpel error {code}: ScalpelModel 'models/", build.Output);
        if (Directory.Exists(app.GeneratedDirectory))
            Assert.DoesNotContain(Directory.GetFiles(app.GeneratedDirectory), f => !f.EndsWith(".stamp", StringComparison.Ordinal));
    }

    [Fact]
    public void TwoProjectsSharingAModelBuildInParallel()
    {
        var models = Path.Combine(feed.Root, "shared-models");
        Directory.CreateDirectory(models);
        File.Copy(TestData.Fixture("mlp.onnx"), Path.Combine(models, "mlp.onnx"), overwrite: true);
        var names = new[] { "parallel-a", "parallel-b" };
        var apps = names.Select(n => new ConsumerProject(feed, n, """<ScalpelModel Include="../shared-models/mlp.onnx" ClassName="Mlp" />""", ClassifierProgram("Consumer.Mlp"))).ToList();
        var solution = Path.Combine(feed.Root, "parallel.slnx");
        File.WriteAllText(solution, "<Solution>\n" + string.Concat(names.Select(n => $"  <Project Path=\"{n}/{n}.csproj\" />\n")) + "</Solution>\n");

        var build = Dotnet.Run(feed.Root, feed.Environment, "build", solution, "-c", "Release", "-m:2", "-nodeReuse:false").Succeeded("parallel build");
        Assert.Equal(2, build.Output.Split('\n').Count(l => l.Contains(Pruning + "../shared-models/mlp.onnx", StringComparison.Ordinal)));
        var images = Images(20);
        var outputs = apps.Select(a => a.RunApp(images.Path).Succeeded(a.ProjectFile).Output).ToList();
        Assert.Equal(outputs[0], outputs[1]);
    }

    [Fact]
    public void CancelledBuildStopsThePruningAndLeavesNoOutputs()
    {
        // Checked against all 10k test images, each search step takes about a second: the pipeline is busy for
        // more than ten seconds after it first says "calibrating" (measured here), time enough to interrupt it.
        TestData.RequireDebianPackage(TestData.FashionMnist, "dataset-fashion-mnist");
        var app = new ConsumerProject(feed, "cancelled", """<ScalpelModel Include="models/rescnn.onnx" CalibrationData="data/test.npy" ValidationData="data/test.npy" />""");
        app.AddFixture("rescnn.onnx", "models/rescnn.onnx");
        var images = IdxFile.ReadImages(Path.Combine(TestData.FashionMnist, "t10k-images-idx3-ubyte.gz"), out int count, out _);
        Directory.CreateDirectory(Path.Combine(app.Directory, "data"));
        NpyFile.Write(Path.Combine(app.Directory, "data", "test.npy"), images, count, 1, 28, 28);

        using var build = Dotnet.StartInterruptible(app.Directory, feed.Environment, out var output, "build", app.ProjectFile, "-c", "Release", "-nodeReuse:false", "-v:normal");
        var clock = Stopwatch.StartNew();
        bool Seen(string text) { lock (output) return output.ToString().Contains(text, StringComparison.Ordinal); }
        while (!Seen("calibrating") && !build.HasExited && clock.Elapsed < TimeSpan.FromMinutes(5)) Thread.Sleep(50);
        Assert.False(build.HasExited, "the build ended before it could be cancelled:\n" + output);
        var interrupted = clock.Elapsed;
        Process.Start("kill", ["-INT", build.Id.ToString(CultureInfo.InvariantCulture)]).WaitForExit(); // Ctrl+C
        Assert.True(build.WaitForExit(TimeSpan.FromMinutes(2)), "the build did not stop after Ctrl+C:\n" + output);
        build.WaitForExit();

        Assert.True(build.ExitCode != 0, $"the build succeeded despite Ctrl+C:\n{output}");
        Assert.DoesNotContain("done:", output.ToString());
        Assert.True(clock.Elapsed - interrupted < TimeSpan.FromSeconds(30), $"the build took {clock.Elapsed - interrupted} to stop after Ctrl+C");
        Assert.DoesNotContain(Directory.GetFiles(app.GeneratedDirectory), f => !f.EndsWith(".stamp", StringComparison.Ordinal));
    }

    [Fact]
    public void InstalledToolRunsAsDotnetScalpel()
    {
        var version = Dotnet.Run(feed.Root, feed.ToolEnvironment, "scalpel", "--version").Succeeded("dotnet scalpel --version");
        Assert.Matches(@"^\d+\.\d+\.\d+", version.Output.Trim());

        var outDir = Path.Combine(feed.Root, "tool-prune");
        var prune = Dotnet.Run(feed.Root, feed.ToolEnvironment, "scalpel", "prune", TestData.Fixture("mlp.onnx"), "--target", "x64-avx2", "--out", outDir,
            "--validation", TestData.Fixture("data/fmnist-test-1000-x.npy"), "--labels", TestData.Fixture("data/fmnist-test-1000-y.npy")).Succeeded("dotnet scalpel prune");
        Assert.Contains("done:", prune.Output);
        Assert.Equal(["Mlp.bin", "Mlp.g.cs", "Mlp.onnx", "Mlp.report.json", "Mlp.report.md"], Directory.GetFiles(outDir).Select(Path.GetFileName).Order());
    }
}
