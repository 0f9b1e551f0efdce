using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Scalpel.Onnx.Proto;
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
    private const string Reusing = ": reusing the result of an earlier build with the same inputs and options";
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

        // A touched model with the same bytes: the result is the cached one, refreshed in place, not pruned again.
        File.SetLastWriteTimeUtc(model, DateTime.UtcNow);
        var touched = app.Build().Succeeded("build after touching the model").Output;
        Assert.Contains(Reusing, touched);
        Assert.DoesNotContain(Pruning, touched);
        Assert.True(File.GetLastWriteTimeUtc(generated) > File.GetLastWriteTimeUtc(model), "the reused code is older than the model");
        Assert.Contains(SkippedAsUpToDate, app.Build("-v:detailed").Succeeded("build after reusing").Output);

        app.WriteItems(Item("1.0"));
        Assert.Contains(Pruning + "models/lenet5.onnx", app.Build().Succeeded("build after changing MaxAccuracyDrop").Output);
        Assert.Contains("--max-accuracy-drop 1", File.ReadAllText(Path.Combine(app.GeneratedDirectory, "Lenet5.stamp")));
        Assert.Contains(SkippedAsUpToDate, app.Build("-v:detailed").Succeeded("build after the option change").Output);

        app.Clean().Succeeded("dotnet clean");
        Assert.Empty(Directory.Exists(app.GeneratedDirectory) ? Directory.GetFiles(app.GeneratedDirectory) : []);
    }

    [Fact]
    public void MisspelledMetadataWarnsWithTheClosestNameAndProgressShowsAtTheDefaultVerbosity()
    {
        // "ValidatonLabels": without the warning the labels are silently dropped and the guard checks agreement instead.
        const string item = """<ScalpelModel Include="models/mlp.onnx" HardwareTarget="x64-avx2" CalibrationData="data/calib.npy" ValidationData="data/val.npy" ValidatonLabels="data/val-labels.npy" MinAgreement="0.95" MeasureLayers="true" />""";
        var app = new ConsumerProject(feed, "misspelled", item);
        app.AddFixture("mlp.onnx", "models/mlp.onnx");
        app.AddFixture("data/fmnist-calib-512-x.npy", "data/calib.npy");
        app.AddFixture("data/fmnist-test-1000-x.npy", "data/val.npy");
        app.AddFixture("data/fmnist-test-1000-y.npy", "data/val-labels.npy");

        var build = app.Build().Succeeded("dotnet build").Output; // the default (minimal) verbosity
        Assert.Contains($"{app.ProjectFile} : Scalpel warning SCALPEL2101: ScalpelModel 'models/mlp.onnx': unknown metadata 'ValidatonLabels' is ignored. Did you mean 'ValidationLabels'?", build);
        var report = File.ReadAllText(Path.Combine(app.GeneratedDirectory, "Mlp.report.md"));
        Assert.Contains("Validation agreement (top-1 agreement with the original model; no labels were given", report);
        Assert.Contains("(budget: at least 95.00 %)", report);
        Assert.DoesNotContain("budget  points", report);
        Assert.StartsWith("**In short:** mlp.onnx was pruned for `x64-avx2`. The model is ", report.Split('\n')[2]);
        Assert.Matches(@"it makes the same top-1 prediction as the original on [\d.]+ % of 1000 validation samples \(at least 95\.00 % was required", report);

        // One line per phase with the time so far, one per accepted step with a bound on what is left, the summary and the report's path; no tries.
        var lines = build.Split('\n').Select(l => l.Trim()).ToList();
        Assert.Contains(lines, l => Regex.IsMatch(l, @"^\[\d+ s\] calibrating on 512 samples"));
        Assert.Contains(lines, l => Regex.IsMatch(l, @"^\+ step 1 accepted: \S+: sparsity \d+ %, validation [\d.]+ % \(after \d+ tries, \d+ s; (at most \d+ more tries, about \d+ s at [\d.]+ s each|no steps left)\)$"));
        Assert.Contains(lines, l => Regex.IsMatch(l, @"^\[\d+ s\] done: [\d.]+ % smaller, validation agreement [\d.]+ % -> [\d.]+ % \([+-][\d.]+ points\); FC and conv layers [\d.]+x faster predicted, [\d.]+x measured here; peak memory \d+ MB$"));
        Assert.Contains("Scalpel: report " + Path.Combine(app.GeneratedDirectory, "Mlp.report.md"), build);
        Assert.DoesNotContain("  try ", build);
    }

    [Fact]
    public void SecondConfigurationAndRestoredOptionsReuseThePruneResult()
    {
        string Item(string target) => $"""<ScalpelModel Include="models/lenet5.onnx" HardwareTarget="{target}" />""";
        var app = new ConsumerProject(feed, "configurations", Item("x64-avx2"), ClassifierProgram("Consumer.Lenet5"));
        app.AddFixture("lenet5.onnx", "models/lenet5.onnx");
        string[] outputs = ["Lenet5.g.cs", "Lenet5.bin", "Lenet5.onnx", "Lenet5.report.md"];
        const string noDataWarning = "Scalpel warning SCALPEL2001: ScalpelModel 'models/lenet5.onnx': no calibration or validation data";

        var release = app.BuildConfiguration("Release").Succeeded("Release build").Output;
        Assert.Contains(Pruning + "models/lenet5.onnx", release);
        Assert.Contains(noDataWarning, release);

        // Debug: same inputs and options, so the Release result is copied, its warning shown again; nothing is pruned.
        var debug = app.BuildConfiguration("Debug").Succeeded("Debug build").Output;
        Assert.DoesNotContain(Pruning, debug);
        Assert.Contains("Scalpel: models/lenet5.onnx for target x64-avx2 into Lenet5" + Reusing, debug);
        Assert.Contains(noDataWarning, debug);
        foreach (var file in outputs)
            Assert.True(File.ReadAllBytes(Path.Combine(app.GeneratedDirectoryOf("Release"), file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(app.GeneratedDirectoryOf("Debug"), file))), $"{file} differs between Release and Debug");

        // A failed build (unknown target), then the good options again: the earlier result, not a new prune.
        app.WriteItems(Item("z80"));
        Assert.Contains("Scalpel error SCALPEL1004", app.BuildConfiguration("Release").Output);
        app.WriteItems(Item("x64-avx2"));
        var restored = app.BuildConfiguration("Release").Succeeded("build with the options restored").Output;
        Assert.DoesNotContain(Pruning, restored);
        Assert.Contains(Reusing, restored);
        var images = Images(5);
        Assert.Equal(images.Count, app.RunApp(images.Path).Succeeded("the consumer").Output.Trim().Split('\n').Length);

        // Another option is another result.
        app.WriteItems(Item("x64-sse"));
        Assert.Contains(Pruning + "models/lenet5.onnx for target x64-sse", app.BuildConfiguration("Release").Succeeded("build for another target").Output);
    }

    [Fact]
    public void GeneratedCodeRunsOptimisedInEveryConfiguration()
    {
        // The app says whether the JIT may optimise its own assembly and the model's (a Debug assembly is
        // compiled debuggable, which the JIT does not optimise), then prints the logits of each image.
        const string program = """
            using System.Diagnostics;
            using System.Globalization;
            using System.Reflection;
            using System.Runtime.InteropServices;
            static bool Optimised(Assembly a) => a.GetCustomAttribute<DebuggableAttribute>()?.IsJITOptimizerDisabled != true;
            Console.WriteLine($"app optimised: {Optimised(typeof(Program).Assembly)}, model optimised: {Optimised(typeof(Consumer.Lenet5).Assembly)}");
            """;
        var app = new ConsumerProject(feed, "optimised", """<ScalpelModel Include="models/lenet5.onnx" HardwareTarget="x64-sse" />""",
            program + ClassifierProgram("Consumer.Lenet5").Replace("using System.Globalization;", "").Replace("using System.Runtime.InteropServices;", ""));
        app.AddFixture("lenet5.onnx", "models/lenet5.onnx");
        var images = Images(10);
        var outputs = new Dictionary<string, string[]>();
        foreach (var configuration in new[] { "Debug", "Release" })
        {
            app.BuildConfiguration(configuration).Succeeded(configuration + " build");
            outputs[configuration] = app.RunAppIn(configuration, images.Path).Succeeded(configuration + " app").Output.Trim().Split('\n').Select(l => l.Trim()).ToArray();
            Assert.True(File.Exists(Path.Combine(app.OutputDirectoryOf(configuration), "optimised.Scalpel.pdb")), "no pdb for the generated code");
        }
        Assert.Equal("app optimised: False, model optimised: True", outputs["Debug"][0]);
        Assert.Equal("app optimised: True, model optimised: True", outputs["Release"][0]);
        Assert.Equal(1 + images.Count, outputs["Debug"].Length);
        Assert.Equal(outputs["Release"][1..], outputs["Debug"][1..]); // the same logits, bit for bit
    }

    /// <summary>
    /// Generated code's one unsafe member, a cache prefetch hint, compiles both apart (the default) and inside the
    /// project (ScalpelOptimizedAssembly false), where the build turns AllowUnsafeBlocks on; both give the same outputs.
    /// </summary>
    [Fact]
    public void GeneratedPrefetchCompilesApartAndInsideTheProject()
    {
        // A 1x1 conv of 256 -> 64 channels on 7x7: 64 KB of packed weights, which the channel kernel prefetches.
        var rng = new Random(3);
        var weights = Enumerable.Range(0, 64 * 256).Select(_ => (float)(rng.NextDouble() - 0.5) / 16).ToArray();
        var graph = new GraphProto
        {
            Name = "pointwise", Input = { OnnxGraphs.BatchOf("x", 256, 7, 7) }, Output = { OnnxGraphs.BatchOf("y", 64, 7, 7) },
            Initializer = { OnnxGraphs.Floats("W", weights, 64, 256, 1, 1) },
            Node = { OnnxGraphs.Node("Conv", ["x", "W"], "y", OnnxGraphs.Ints("kernel_shape", 1, 1)) },
        };
        const string program = """
            var model = new Consumer.Pointwise();
            var x = Enumerable.Range(0, Consumer.Pointwise.InputSize).Select(i => (float)Math.Sin(i)).ToArray();
            var y = new float[Consumer.Pointwise.OutputSize];
            model.Run(x, y);
            Console.WriteLine(string.Join(" ", y.Take(8).Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture))));
            """;
        var app = new ConsumerProject(feed, "prefetch", """<ScalpelModel Include="models/pointwise.onnx" HardwareTarget="x64-avx2" />""", program);
        Directory.CreateDirectory(Path.Combine(app.Directory, "models"));
        File.WriteAllBytes(Path.Combine(app.Directory, "models", "pointwise.onnx"), Google.Protobuf.MessageExtensions.ToByteArray(OnnxGraphs.Model(graph)));
        var outputs = new List<string>();
        foreach (var optimised in new[] { "true", "false" })
        {
            app.Build("-p:ScalpelOptimizedAssembly=" + optimised).Succeeded("build with ScalpelOptimizedAssembly " + optimised);
            Assert.Contains("Prefetch(ref", File.ReadAllText(Path.Combine(app.GeneratedDirectory, "Pointwise.g.cs")), StringComparison.Ordinal);
            outputs.Add(app.RunApp().Succeeded("app").Output.Trim());
        }
        Assert.Equal(outputs[0], outputs[1]);
    }

    [Fact]
    public void DesignTimeBuildNeverPrunesYetSeesTheCodeAnEarlierBuildMade()
    {
        var app = new ConsumerProject(feed, "design-time", """<ScalpelModel Include="models/lenet5.onnx" />""", ClassifierProgram("Consumer.Lenet5"));
        app.AddFixture("lenet5.onnx", "models/lenet5.onnx");
        var generated = Path.Combine(app.GeneratedDirectory, "Lenet5.g.cs");
        // What an IDE asks for: the references after a design-time build (the generated code's assembly), which must not run the pipeline.
        Dotnet.Result DesignTimeReferences() => Dotnet.Run(app.Directory, feed.Environment, "msbuild", app.ProjectFile, "-restore", "-nodeReuse:false",
            "-p:Configuration=Release", "-p:DesignTimeBuild=true", "-t:ScalpelGenerate", "-getItem:ReferencePath").Succeeded("design-time build");

        Assert.DoesNotContain("design-time.Scalpel.dll", DesignTimeReferences().Output);
        Assert.False(File.Exists(generated), "a design-time build ran the pipeline");

        app.Build().Succeeded("dotnet build");
        var built = File.GetLastWriteTimeUtc(generated);
        Assert.Contains("design-time.Scalpel.dll", DesignTimeReferences().Output);
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
        { "model-bytes-over-the-limit", """<ScalpelModel Include="models/mlp.onnx" MaxModelBytes="100000" />""", "SCALPEL1002" },
        { "bad-model-bytes", """<ScalpelModel Include="models/mlp.onnx" MaxModelBytes="0" />""", "SCALPEL1006" },
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

    /// <summary>
    /// A bad metadata value gets the message the command line gives the same value (CommandLineTests checks that
    /// side), naming the metadata, when the item is resolved: the tool never starts. Sparsity and Technique used to
    /// reach the tool unchecked.
    /// </summary>
    [Theory]
    [InlineData("MaxAccuracyDrop", "150")]
    [InlineData("Sparsity", "fc=1.5")]
    [InlineData("Technique", "conv=nod")]
    public void BadMetadataGetsItsOptionSpecsMessageBeforeTheToolStarts(string metadata, string value)
    {
        var spec = OptionSpecs.All.Single(o => o.Metadata == metadata);
        var expected = spec.Parse(value, metadata, out _);
        Assert.NotNull(expected);
        var app = new ConsumerProject(feed, "bad-value-" + metadata, $"""<ScalpelModel Include="models/mlp.onnx" {metadata}="{value}" />""");
        app.AddFixture("mlp.onnx", "models/mlp.onnx");

        var build = app.Build();
        Assert.NotEqual(0, build.ExitCode);
        Assert.Contains($"{app.ProjectFile} : Scalpel error SCALPEL1006: ScalpelModel 'models/mlp.onnx': {expected}", build.Output);
        Assert.DoesNotContain(Pruning, build.Output);
    }

    [Fact]
    public void LabelFileErrorSaysWhatItHoldsInWordsAndNamesItsMetadata()
    {
        // The inputs given as labels by mistake: 32-bit floats where class indices belong.
        var app = new ConsumerProject(feed, "bad-labels", """<ScalpelModel Include="models/mlp.onnx" ValidationData="data/val.npy" ValidationLabels="data/val.npy" />""");
        app.AddFixture("mlp.onnx", "models/mlp.onnx");
        var val = app.AddFixture("data/fmnist-test-1000-x.npy", "data/val.npy");

        var build = app.Build();
        Assert.NotEqual(0, build.ExitCode);
        Assert.Contains($"{app.ProjectFile} : Scalpel error SCALPEL1005: ScalpelModel 'models/mlp.onnx': {val} (given by ValidationLabels): holds 32-bit floats (float32); labels must be whole numbers (int32 or int64)", build.Output);
        Assert.DoesNotContain("<f4", build.Output);
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

    [Theory]
    [InlineData("lenet5.onnx")]
    [InlineData("rescnn.onnx")]
    public void PruningACnnWith2000CalibrationImagesStaysUnder500MB(string model)
    {
        // 2000 real images: the fixture's 1000 test images twice (the memory depends on the count, not the content).
        var x = NpyFile.Read(TestData.Fixture("data/fmnist-test-1000-x.npy")).Floats!;
        var calibration = Path.Combine(feed.Root, $"calib-2000-{model}.npy");
        NpyFile.Write(calibration, [.. x, .. x], 2000, 1, 28, 28);
        var prune = Dotnet.Run(feed.Root, feed.ToolEnvironment, "scalpel", "prune", TestData.Fixture(model), "--target", "x64-avx2", "--out", Path.Combine(feed.Root, "memory-" + model),
            "--calibration", calibration, "--validation", TestData.Fixture("data/fmnist-test-1000-x.npy"), "--labels", TestData.Fixture("data/fmnist-test-1000-y.npy"), "--measure", "false").Succeeded("dotnet scalpel prune");
        var peak = Regex.Match(prune.Output, @"done: .*; peak memory (\d+) MB");
        Assert.True(peak.Success, prune.Output);
        Assert.True(int.Parse(peak.Groups[1].Value, CultureInfo.InvariantCulture) < 500, $"peak memory {peak.Groups[1].Value} MB");
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
