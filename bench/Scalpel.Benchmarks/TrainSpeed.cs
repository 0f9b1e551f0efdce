using System.Diagnostics;
using System.Globalization;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Pruning.Calibration;
using Scalpel.Pruning.Data;
using Scalpel.Pruning.Training;

namespace Scalpel.Benchmarks;

/// <summary>
/// The trainer's speed (docs/performance.md, "Retraining"): images/s of batch-64 Adam epochs over the training
/// set with 1 and with all cores (TrainOptions.Threads), interleaved, each from the same starting weights; and
/// images per CPU second of the process (less sensitive to other work on a shared machine than wall time).
///
///     dotnet run -c Release --project bench/Scalpel.Benchmarks -- train MODEL.onnx TRAIN-X.npy TRAIN-Y.npy [SAMPLES [REPEATS [THREADS,...]]]
/// (threads default: 1 and all cores; pin the process with taskset to compare whole processes).
/// </summary>
public static class TrainSpeed
{
    public static int Run(string[] args)
    {
        var source = OnnxModel.Load(args[0]);
        var shape = GraphAnalyzer.Analyze(source).InputShape;
        int samples = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 10_000;
        int repeats = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 3;
        var train = Dataset.Load(args[1], args[2], shape[1..], maxSamples: samples);
        var threadCounts = args.Length > 5 ? args[5].Split(',').Select(t => int.Parse(t, CultureInfo.InvariantCulture)) : [1, Environment.ProcessorCount];
        var runs = threadCounts.Distinct().ToDictionary(t => t, _ => new List<double>());
        var cpuRuns = runs.Keys.ToDictionary(t => t, _ => new List<double>());
        for (int r = 0; r < repeats + 1; r++)
            foreach (int threads in runs.Keys)
            {
                var net = new Network(GraphAnalyzer.Analyze(OnnxModel.Load(args[0])));
                var process = Process.GetCurrentProcess();
                var cpu = process.TotalProcessorTime;
                var clock = Stopwatch.StartNew();
                Trainer.Train(net, train, null, new TrainOptions { Epochs = 1, LearningRate = 1e-3f, Threads = threads });
                double rate = train.Count / clock.Elapsed.TotalSeconds;
                process.Refresh();
                double perCpuSecond = train.Count / (process.TotalProcessorTime - cpu).TotalSeconds;
                if (r == 0) continue; // warm-up (tiering)
                runs[threads].Add(rate);
                cpuRuns[threads].Add(perCpuSecond);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{threads} thread(s): {rate:0} images/s, {perCpuSecond:0} images per CPU second (load {File.ReadAllText("/proc/loadavg").Split(' ')[0]})"));
            }
        double Median(List<double> v) => v.Order().ElementAt(v.Count / 2);
        foreach (var (threads, v) in runs)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"median {threads} thread(s): {Median(v):0} images/s, {Median(cpuRuns[threads]):0} images per CPU second"));
        if (runs.Count > 1)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ratio: {Median(runs[runs.Keys.Max()]) / Median(runs[runs.Keys.Min()]):0.00}x"));
        return 0;
    }

    /// <summary>
    /// Top-1 accuracy of models on labelled data with ONNX Runtime (for the unseen test set after pruning), and of
    /// each model after the first against the first, paired (Calibration.PairedAccuracy):
    ///     dotnet run -c Release --project bench/Scalpel.Benchmarks -- score X.npy Y.npy ORIGINAL.onnx PRUNED.onnx...
    /// </summary>
    public static int Score(string[] args)
    {
        int[]? first = null;
        foreach (var path in args[2..])
        {
            var model = OnnxModel.Load(path);
            var data = Dataset.Load(args[0], args[1], GraphAnalyzer.Analyze(model).InputShape[1..]);
            var top1 = Accuracy.Top1(Accuracy.Logits(model.Proto, data), data.Count);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{path}: {Accuracy.Score(top1, data.Labels!):P2} on {data.Count} samples"));
            if (first is null) first = top1;
            else
            {
                var paired = PairedAccuracy.Of(first, top1, data.Labels!);
                var (lower, upper) = paired.Interval();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  against the first: {100 * paired.Delta:+0.00;-0.00} points, 95 % interval {100 * lower:+0.00;-0.00} to {100 * upper:+0.00;-0.00}; {paired.Lost} lost, {paired.Gained} gained ({paired.Disagreement:P2} disagree)"));
            }
        }
        return 0;
    }
}
