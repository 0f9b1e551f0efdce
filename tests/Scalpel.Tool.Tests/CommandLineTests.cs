using Scalpel.Tool;
using Xunit;

namespace Scalpel.Tests;

/// <summary>The command line, run in-process (Console redirected, so this class is its own serial collection).</summary>
[Collection("console")]
public sealed class CommandLineTests
{
    private static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try
        {
            int exit = Program.Main(args);
            return (exit, stdout.ToString(), stderr.ToString());
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
        }
    }

    [Fact]
    public void CompileWritesSourceAndWeightsDeterministically()
    {
        var a = TestData.TempDir();
        var b = TestData.TempDir();
        foreach (var dir in new[] { a, b })
        {
            var (exit, output, error) = Run("compile", TestData.Fixture("lenet5.onnx"), "--target", "x64-avx2", "--out", dir, "--namespace", "Acme.Vision", "--class", "LeNet");
            Assert.True(exit == 0, error);
            Assert.Contains("LeNet.g.cs", output);
        }
        Assert.Equal(["LeNet.bin", "LeNet.g.cs"], Directory.GetFiles(a).Select(Path.GetFileName).Order());
        Assert.Equal(File.ReadAllBytes(Path.Combine(a, "LeNet.g.cs")), File.ReadAllBytes(Path.Combine(b, "LeNet.g.cs")));
        Assert.Equal(File.ReadAllBytes(Path.Combine(a, "LeNet.bin")), File.ReadAllBytes(Path.Combine(b, "LeNet.bin")));
        var source = File.ReadAllText(Path.Combine(a, "LeNet.g.cs"));
        Assert.Contains("namespace Acme.Vision;", source);
        Assert.Contains("Vector256<float>", source);
        Assert.Contains("public const int InputSize = 784;", source);
    }

    [Fact]
    public void InspectPrintsEveryLayer()
    {
        var (exit, output, _) = Run("inspect", TestData.Fixture("mlp.onnx"));
        Assert.Equal(0, exit);
        Assert.Contains("[N,784] -> [N,300]", output);
        Assert.Contains("235,200", output); // MACs of the first layer
        Assert.Contains("total: 266,610 parameters", output);
    }

    [Fact]
    public void BadModelFailsWithOneLineAndNoOutputFiles()
    {
        var dir = TestData.TempDir();
        var bad = Path.Combine(dir, "bad.onnx");
        File.WriteAllBytes(bad, File.ReadAllBytes(TestData.Fixture("mlp.onnx"))[..5000]);
        var outDir = Path.Combine(dir, "out");
        var (exit, _, error) = Run("compile", bad, "--out", outDir);
        Assert.NotEqual(0, exit);
        Assert.Single(error.Trim().Split('\n'));
        Assert.StartsWith("error SCALPEL1002: ", error);
        Assert.Contains("bad.onnx", error);
        Assert.False(Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any(), "partial outputs left behind");
    }

    [Fact]
    public void HostileNodeNamesInErrorsStayOnOneLineWithoutControlCharacters()
    {
        var proto = Scalpel.Onnx.Proto.ModelProto.Parser.ParseFrom(File.ReadAllBytes(TestData.Fixture("mlp.onnx")));
        var relu = proto.Graph.Node.First(n => n.OpType == "Relu");
        relu.OpType = "Gelu";
        relu.Name = "evil\u001b[31m\nerror SCALPEL0000: fake\u2028line";
        var path = Path.Combine(TestData.TempDir(), "evil.onnx");
        File.WriteAllBytes(path, Google.Protobuf.MessageExtensions.ToByteArray(proto));
        var (exit, _, error) = Run("compile", path, "--out", TestData.TempDir());
        Assert.Equal(1, exit);
        Assert.Single(error.TrimEnd('\n').Split('\n'));
        Assert.StartsWith("error SCALPEL1003: ", error);
        Assert.DoesNotContain(error.TrimEnd('\n'), c => char.IsControl(c) || c is '\u2028');
    }

    [Fact]
    public void InspectPrintsHostileNamesWithoutLineBreaksOrEscapes()
    {
        var proto = Scalpel.Onnx.Proto.ModelProto.Parser.ParseFrom(File.ReadAllBytes(TestData.Fixture("mlp.onnx")));
        var gemm = proto.Graph.Node.First(n => n.OpType == "Gemm");
        gemm.Name = "evil\u001b[31m\nfake line\u2028x";
        var path = Path.Combine(TestData.TempDir(), "evil.onnx");
        File.WriteAllBytes(path, Google.Protobuf.MessageExtensions.ToByteArray(proto));
        var (plainExit, plain, _) = Run("inspect", TestData.Fixture("mlp.onnx"));
        var (exit, output, _) = Run("inspect", path);
        Assert.Equal(0, plainExit);
        Assert.Equal(0, exit);
        Assert.Equal(plain.Split('\n').Length, output.Split('\n').Length);
        Assert.DoesNotContain(output.Replace("\n", "", StringComparison.Ordinal), c => char.IsControl(c) || c is '\u2028');
    }

    [Fact]
    public void UnknownTargetListsTheKnownOnes()
    {
        var (exit, _, error) = Run("compile", TestData.Fixture("mlp.onnx"), "--target", "z80", "--out", TestData.TempDir());
        Assert.NotEqual(0, exit);
        Assert.StartsWith("error SCALPEL1004: unknown target 'z80'", error);
        Assert.Contains("x64-avx2", error);
    }

    [Fact]
    public void InvalidClassNameIsRefused()
    {
        var (exit, _, error) = Run("compile", TestData.Fixture("mlp.onnx"), "--out", TestData.TempDir(), "--class", "not valid");
        Assert.NotEqual(0, exit);
        Assert.StartsWith("error SCALPEL1006: ", error);
        Assert.Contains("not a valid C# class name", error);
    }

    [Fact]
    public void MissingModelFileIsAClearError()
    {
        var (exit, _, error) = Run("inspect", "/nonexistent/model.onnx");
        Assert.NotEqual(0, exit);
        Assert.StartsWith("error SCALPEL1001: /nonexistent/model.onnx", error);
    }

    [Fact]
    public void UnparsableOptionIsADiagnosticNamingTheOption()
    {
        var (exit, _, error) = Run("prune", TestData.Fixture("mlp.onnx"), "--out", TestData.TempDir(), "--max-accuracy-drop", "lots");
        Assert.Equal(1, exit);
        Assert.StartsWith("error SCALPEL1006: ", error);
        Assert.Contains("--max-accuracy-drop", error);
    }

    [Fact]
    public void PruneWithoutDataWarnsThatAccuracyWasNotChecked()
    {
        var dir = TestData.TempDir();
        var (exit, _, error) = Run("prune", TestData.Fixture("mlp.onnx"), "--out", dir, "--measure", "false");
        Assert.Equal(0, exit);
        Assert.StartsWith("warning SCALPEL2001: no calibration or validation data", error);
        Assert.Contains("SCALPEL2001", File.ReadAllText(Path.Combine(dir, "Mlp.report.md")));
    }

    [Fact]
    public void PruneThatCannotMeetTheBudgetWarnsItKeptTheDenseModel()
    {
        // Agreement 1.0 on 1000 images without calibration data: every pruning step changes some prediction.
        var (exit, output, error) = Run("prune", TestData.Fixture("lenet5.onnx"), "--out", TestData.TempDir(), "--measure", "false",
            "--validation", TestData.Fixture("data/fmnist-test-1000-x.npy"), "--min-agreement", "1");
        Assert.Equal(0, exit);
        Assert.Contains("done: 0.0 % smaller", output);
        Assert.StartsWith("warning SCALPEL2002: the accuracy budget allowed no pruning", error);
    }

    [Fact]
    public void HelpAndErrorsSpellChoicesAsTheyAreTyped()
    {
        var (exit, help, _) = Run("prune", "--help");
        Assert.Equal(0, exit);
        Assert.Contains("--method <scalpel|traditional|dense>", help);
        Assert.Contains("--criterion <dataaware|magnitude>", help);
        Assert.Contains("\"conv=node;fc=weight;/1/Gemm=csr\"", help);
        Assert.DoesNotContain("Dense|Scalpel", help);

        var (badMethod, _, methodError) = Run("prune", TestData.Fixture("mlp.onnx"), "--out", TestData.TempDir(), "--method", "scapel");
        Assert.Equal(1, badMethod);
        Assert.StartsWith("error SCALPEL1006: --method: 'scapel' is not one of: scalpel, traditional, dense. Did you mean 'scalpel'?", methodError);

        var (badTechnique, _, techniqueError) = Run("prune", TestData.Fixture("mlp.onnx"), "--out", TestData.TempDir(), "--technique", "fc=wieght");
        Assert.Equal(1, badTechnique);
        Assert.StartsWith("error SCALPEL1006: --technique 'fc=wieght': expected NAME=weight, NAME=csr or NAME=node. Did you mean 'weight'?", techniqueError);
    }

    [Fact]
    public void OptionListsTakeSemicolonsAsTheMetadataDo()
    {
        var dir = TestData.TempDir();
        var (exit, _, error) = Run("prune", TestData.Fixture("mlp.onnx"), "--out", dir, "--measure", "false", "--technique", "/1/Gemm=csr;/3/Gemm=csr", "--sparsity", "/1/Gemm=0.5;/3/Gemm=0.5");
        Assert.True(exit == 0, error);
        var report = File.ReadAllText(Path.Combine(dir, "Mlp.report.md"));
        Assert.Contains("| /1/Gemm | fc | traditional weight pruning | CSR | 50.0 % |", report);
        Assert.Contains("| /3/Gemm | fc | traditional weight pruning | CSR | 50.0 % |", report);
    }

    [Fact]
    public void LabelFileOfFloatsIsNamedInWordsWithItsOption()
    {
        var (exit, _, error) = Run("prune", TestData.Fixture("mlp.onnx"), "--out", TestData.TempDir(), "--measure", "false",
            "--validation", TestData.Fixture("data/fmnist-test-1000-x.npy"), "--labels", TestData.Fixture("data/fmnist-test-1000-x.npy"));
        Assert.Equal(1, exit);
        Assert.StartsWith($"error SCALPEL1005: {TestData.Fixture("data/fmnist-test-1000-x.npy")} (given by --labels): holds 32-bit floats (float32); labels must be whole numbers (int32 or int64)", error);
        Assert.DoesNotContain("<f4", error);
    }

    [Fact]
    public void ReportSaysInPlainWordsWhatChangedAndNotesASparseLayerSlowerThanDense()
    {
        // Every layer at 30 % sparsity, far below any crossover: sparse kernels that measure slower than the dense ones.
        var dir = TestData.TempDir();
        var (exit, output, error) = Run("prune", TestData.Fixture("mlp.onnx"), "--out", dir, "--target", "x64-avx2", "--measure", "true",
            "--technique", "/1/Gemm=csr", "--sparsity", "/1/Gemm=0.3;/3/Gemm=0.3;/5/Gemm=0.3");
        Assert.True(exit == 0, error);
        var report = File.ReadAllText(Path.Combine(dir, "Mlp.report.md"));
        var lines = report.Split('\n');
        Assert.Matches(@"^\*\*In short:\*\* mlp\.onnx was pruned for `x64-avx2`\. The model is [\d.]+ % (smaller|larger) \([\d,]+ bytes of weights against 1,064,800[):]", lines[2]);
        Assert.Contains("its accuracy was **not checked** (no validation data)", lines[2]);
        Assert.True(report.IndexOf("## Details", StringComparison.Ordinal) > report.IndexOf("**In short:**", StringComparison.Ordinal));
        Assert.Matches(@"Peak memory of the pruning process: \d+ MB\.", report);
        if (!System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated || !System.Runtime.Intrinsics.X86.Fma.IsSupported)
        {
            Assert.Contains("(predicted from the target's profile; not measured)", lines[2]); // the kernels are timed only where they run in hardware
            return;
        }
        Assert.Matches(@"should run [\d.]+x as fast as the unpruned generated code \(predicted from the target's profile; [\d.]+x measured on the machine that pruned it\)", lines[2]);
        // The planner runs dense any layer whose sparse kernel measured slower in most of three timings; a sparse layer
        // that still measured slower in the report's timing is named in the note, and only then is there a note.
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "Mlp.report.json")));
        var slower = json.RootElement.GetProperty("layers").EnumerateArray()
            .Where(l => l.GetProperty("format").GetString() != "dense" && l.GetProperty("measuredMicroseconds").GetDouble() > l.GetProperty("measuredDenseMicroseconds").GetDouble())
            .Select(l => l.GetProperty("name").GetString()!).ToList();
        if (slower.Count == 0) Assert.DoesNotContain("> **Note**: measured on the machine that pruned", report);
        foreach (var name in slower)
            Assert.Matches(@"> \*\*Note\*\*: measured on the machine that pruned, .*" + System.Text.RegularExpressions.Regex.Escape(name) + @" \(.*?\) took [\d.]+ µs against [\d.]+ µs dense", report); // the format may hold parentheses: "output-grouped (G=8)"
        Assert.Contains("measured here", output);
    }

    [Theory]
    [InlineData("--sparsity", "fc=NaN", "--sparsity")]
    [InlineData("--sparsity", "/no/such/layer=0.9", "/no/such/layer")]
    [InlineData("--keep-dense", "/1/Gem", "/1/Gem")]
    [InlineData("--max-accuracy-drop", "NaN", "--max-accuracy-drop")]
    [InlineData("--max-accuracy-drop", "-1", "--max-accuracy-drop")]
    [InlineData("--min-agreement", "Infinity", "--min-agreement")]
    [InlineData("--labels", "labels.npy", "without --validation")]
    [InlineData("--train-labels", "labels.npy", "without --train")]
    [InlineData("--learning-rate", "NaN", "--learning-rate")]
    [InlineData("--max-model-bytes", "0", "--max-model-bytes")]
    [InlineData("--class", "class", "keyword")]
    [InlineData("--class", "Weights", "generated code")]
    [InlineData("--class", "Mlp\n", "class name")]
    public void BadOptionValuesAreOneLineOptionErrorsBeforeAnyWork(string option, string value, string expected)
    {
        var dir = TestData.TempDir();
        var (exit, output, error) = Run("prune", TestData.Fixture("mlp.onnx"), "--out", dir, "--measure", "false", option, value.Replace("\\n", "\n"));
        Assert.Equal(1, exit);
        Assert.Single(error.Trim().Split('\n'));
        Assert.StartsWith("error SCALPEL1006: ", error);
        Assert.Contains(expected, error);
        Assert.DoesNotContain("calibrating", output);
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir));
    }

    /// <summary>The message a ScalpelModel item's metadata gets for the same value (BuildIntegrationTests checks a build says it), with the option's name.</summary>
    [Theory]
    [InlineData("--max-accuracy-drop", "150")]
    [InlineData("--max-accuracy-drop", "lots")]
    [InlineData("--epochs", "0")]
    [InlineData("--max-model-bytes", "-5")]
    [InlineData("--sparsity", "fc=1.5")]
    [InlineData("--technique", "conv=nod")]
    [InlineData("--criterion", "magnitud")]
    public void BadValuesGetTheMessageTheirOptionSpecGives(string option, string value)
    {
        var spec = OptionSpecs.All.Single(o => o.Option == option);
        var expected = spec.Parse(value, null, out _);
        Assert.NotNull(expected);
        var (exit, _, error) = Run("prune", TestData.Fixture("mlp.onnx"), "--out", TestData.TempDir(), "--measure", "false", option, value);
        Assert.Equal(1, exit);
        Assert.Equal("error SCALPEL1006: " + expected, error.Split('\n')[0].TrimEnd());
    }

    [Fact]
    public void TrainingDataWithoutLabelsIsADataError()
    {
        var (exit, _, error) = Run("prune", TestData.Fixture("mlp.onnx"), "--out", TestData.TempDir(), "--train", TestData.Fixture("data/fmnist-test-1000-x.npy"));
        Assert.Equal(1, exit);
        Assert.Equal("error SCALPEL1005: --train is given without --train-labels: training data needs its labels.", error.Trim());
    }

    [Fact]
    public void CompileRefusesReservedClassNamesAndTrailingNewlines()
    {
        foreach (var name in new[] { "Weights", "Math", "Mlp\n", "int" })
        {
            var dir = TestData.TempDir();
            var (exit, _, error) = Run("compile", TestData.Fixture("mlp.onnx"), "--out", dir, "--class", name);
            Assert.Equal(1, exit);
            Assert.StartsWith("error SCALPEL1006: ", error);
            Assert.Empty(Directory.EnumerateFileSystemEntries(dir));
        }
    }

    private static Dictionary<string, byte[]> Snapshot(string dir) =>
        Directory.GetFiles(dir).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);

    [Fact]
    public void TemporaryFilesOfKilledRunsAreRemoved()
    {
        var parent = TestData.TempDir();
        var outDir = Path.Combine(parent, "out");
        Directory.CreateDirectory(outDir);
        // What a SIGKILL used to leave (C.bin.tmp-PID) and now could leave (a temporary folder), from a process that is gone.
        File.WriteAllBytes(Path.Combine(outDir, "LeNet.bin.tmp-2147483646"), new byte[1000]);
        Directory.CreateDirectory(Path.Combine(parent, ".out.scalpel-tmp-2147483646-deadbeef"));
        // The user's own files, and a live process's temporary file, stay.
        File.WriteAllText(Path.Combine(outDir, "notes.tmp-draft"), "mine");
        File.WriteAllText(Path.Combine(outDir, "Other.bin.tmp-2147483646"), "mine");
        File.WriteAllText(Path.Combine(outDir, $"LeNet.g.cs.tmp-{Environment.ProcessId}"), "in use");
        var (exit, _, error) = Run("compile", TestData.Fixture("lenet5.onnx"), "--out", outDir, "--class", "LeNet");
        Assert.True(exit == 0, error);
        Assert.Equal(["LeNet.bin", "LeNet.g.cs", $"LeNet.g.cs.tmp-{Environment.ProcessId}", "Other.bin.tmp-2147483646", "notes.tmp-draft"],
            Directory.GetFiles(outDir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(["out"], Directory.GetFileSystemEntries(parent).Select(Path.GetFileName));
    }

    [Fact]
    public void AFailedWriteLeavesThePreviousOutputs()
    {
        var outDir = Path.Combine(TestData.TempDir(), "out");
        Assert.Equal(0, Run("compile", TestData.Fixture("mlp.onnx"), "--out", outDir, "--class", "Net").Exit);
        // The source file's place is taken by a folder: C.bin is replaced first, then moving C.g.cs in fails.
        File.Delete(Path.Combine(outDir, "Net.g.cs"));
        Directory.CreateDirectory(Path.Combine(outDir, "Net.g.cs"));
        var before = Snapshot(outDir);
        var (exit, _, error) = Run("compile", TestData.Fixture("lenet5.onnx"), "--out", outDir, "--class", "Net");
        Assert.Equal(1, exit);
        Assert.StartsWith("error SCALPEL1007: ", error);
        Assert.Single(error.Trim().Split('\n'));
        Assert.Equal(before, Snapshot(outDir));
        Assert.True(Directory.Exists(Path.Combine(outDir, "Net.g.cs")));
        Assert.Equal(["out"], Directory.GetFileSystemEntries(Path.GetDirectoryName(outDir)!).Select(Path.GetFileName));
    }

    [Fact]
    public void ACancelledWriteChangesNothing()
    {
        var outDir = Path.Combine(TestData.TempDir(), "out");
        Assert.Equal(0, Run("compile", TestData.Fixture("mlp.onnx"), "--out", outDir, "--class", "Net").Exit);
        var before = Snapshot(outDir);
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => Scalpel.CodeGen.ModelCompiler.WriteAll(outDir,
            [(Path.Combine(outDir, "Net.bin"), new byte[] { 1 }), (Path.Combine(outDir, "Net.g.cs"), new byte[] { 2 })], cancelled.Token));
        Assert.Equal(before, Snapshot(outDir));
        Assert.Equal(["out"], Directory.GetFileSystemEntries(Path.GetDirectoryName(outDir)!).Select(Path.GetFileName));
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);

    [Fact]
    public async Task SigintSaysCancelledAndKeepsThePreviousOutputs()
    {
        var outDir = Path.Combine(TestData.TempDir(), "out");
        Assert.Equal(0, Run("compile", TestData.Fixture("lenet5.onnx"), "--out", outDir, "--class", "Net").Exit);
        var before = Snapshot(outDir);
        var start = new System.Diagnostics.ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "dotnet-scalpel"))
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
            ArgumentList =
            {
                "prune", TestData.Fixture("lenet5.onnx"), "--out", outDir, "--class", "Net", "--measure", "false", "--target", "x64-avx2",
                "--calibration", TestData.Fixture("data/fmnist-calib-512-x.npy"), "--validation", TestData.Fixture("data/fmnist-test-1000-x.npy"),
                "--labels", TestData.Fixture("data/fmnist-test-1000-y.npy"),
                // Retraining keeps the run going for seconds after validation (the search alone is over in about
                // two), so the signal lands mid-run even when this test's process is slow to read the line.
                "--train", TestData.Fixture("data/fmnist-calib-512-x.npy"), "--train-labels", TestData.Fixture("data/fmnist-calib-512-y.npy"), "--epochs", "50",
            },
        };
        using var process = System.Diagnostics.Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync();
        string? line;
        while ((line = await process.StandardOutput.ReadLineAsync()) is not null && !System.Text.RegularExpressions.Regex.IsMatch(line, @"^\[\d+ s\] validation:")) { } // phase lines start with the time so far
        Assert.NotNull(line); // the run got as far as validating, and is searching now
        // Signalled directly, not by starting kill(1): on a loaded machine that start can outlast the short search.
        Assert.Equal(0, SendSignal(process.Id, 2)); // SIGINT
        _ = process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(130, process.ExitCode);
        Assert.Contains("error SCALPEL1008: cancelled", await error);
        Assert.Equal(before, Snapshot(outDir));
    }

    [Fact]
    public async Task FifosGivenAsModelDataOrTargetAreRefusedWithoutBlocking()
    {
        var dir = TestData.TempDir();
        var fifo = Path.Combine(dir, "pipe.onnx");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", fifo)) await mkfifo.WaitForExitAsync();
        var model = TestData.Fixture("mlp.onnx");
        foreach (var args in new[]
        {
            new[] { "compile", fifo, "--out", Path.Combine(dir, "a") },
            new[] { "prune", model, "--out", Path.Combine(dir, "b"), "--calibration", fifo },
            new[] { "compile", model, "--out", Path.Combine(dir, "c"), "--target", fifo + ".json" },
        })
        {
            if (args[^1].EndsWith(".json", StringComparison.Ordinal) && !File.Exists(args[^1]))
                using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", args[^1])) await mkfifo.WaitForExitAsync();
            var (exit, _, error) = await Task.Run(() => Run(args)).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(1, exit);
            Assert.Contains("not a regular file", error);
        }
    }

    [Theory]
    [InlineData("mlp.onnx", "Mlp")]
    [InlineData("my-model_v2.onnx", "MyModelV2")]
    [InlineData("3d.onnx", "Model3d")]
    public void ClassNameComesFromTheFileName(string file, string expected) => Assert.Equal(expected, Program.ClassNameFrom(file));
}
