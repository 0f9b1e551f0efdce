using System.Diagnostics;
using System.Globalization;
using System.Text;
using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Pruning.Profiling;
using Scalpel.Tests;

namespace Scalpel.Benchmarks;

/// <summary>
/// Whole models (the classification architectures that bench/models/make_models.py exports, or any folder of
/// ONNX files): generated code against ONNX Runtime at batch 1 and batch 32, and the time to generate and compile
/// the code. A file NAME.pruned.onnx beside NAME.onnx (a `dotnet scalpel prune` output) adds a row comparing the
/// pruned generated code with ONNX Runtime on the original, against the multiply-adds pruning removed. For the
/// host target the conv kernels are chosen as `dotnet scalpel prune --target host` chooses them: timed on this
/// machine (MeasuredConvKernels, with its cache); "cost-model" as a fourth argument leaves the choice to the cost model.
/// </summary>
public static class ModelSweep
{
    public static int Run(string[] args)
    {
        string folder = args.Length > 0 ? args[0] : Path.Combine(TestData.RepoRoot, "bench", "models", "out");
        var target = CodeTarget.Resolve(args.Length > 1 ? args[1] : "host");
        string? only = args.Length > 2 && args[2] != "all" ? args[2] : null;
        bool measure = target.Name == "host" && !(args.Length > 3 && args[3] == "cost-model") && LayerTimer.Accelerated(target);
        var cache = new KernelTimingCache(KernelTimingCache.DefaultPath);
        var table = new StringBuilder();
        table.AppendLine("| model | GMAC | batch 1: ONNX Runtime | generated | speedup | batch 32: ONNX Runtime | generated | speedup | generate + compile |");
        table.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        var compiled = new SortedDictionary<string, (string Path, RunBatch Run, double Gmac, double Compile)>(StringComparer.Ordinal);
        foreach (var path in Directory.GetFiles(folder, "*.onnx").Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileNameWithoutExtension(path);
            if (only is not null && name != only && name != only + ".pruned") continue;
            var watch = Stopwatch.StartNew();
            var graph = GraphAnalyzer.Analyze(OnnxModel.Load(path));
            var kernels = measure ? MeasuredConvKernels.Choose(graph, target, cache, new Progress<string>(Console.WriteLine)) : [];
            double timing = watch.Elapsed.TotalSeconds;
            var run = GeneratedAssembly.CompileOne(CSharpEmitter.Emit(graph, new EmitOptions("Models", "Model", target, Path.GetFileName(path)) { MeasuredKernels = kernels }), "Models");
            compiled[name] = (path, run, graph.Layers.Sum(l => l.Macs) / 1e9, watch.Elapsed.TotalSeconds - timing);
        }
        var pruned = new StringBuilder();
        foreach (var (name, m) in compiled)
        {
            // A pruned copy is timed in the same rounds as ONNX Runtime on the original: on a shared machine, rows
            // timed minutes apart can differ by more than pruning gains.
            bool hasPruned = compiled.TryGetValue(name + ".pruned", out var p);
            var one = HeadToHead.Time(m.Path, [m.Run], 1, name, hasPruned ? [p.Run] : null);
            var many = HeadToHead.Time(m.Path, [m.Run], 32, name, hasPruned ? [p.Run] : null);
            var line = string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {m.Gmac:0.000} | {Us(one[0])} | {Us(one[1])} | {one[0] / one[1]:0.00}x | {Us(many[0])} | {Us(many[1])} | {many[0] / many[1]:0.00}x | {m.Compile:0.0} s |");
            Console.WriteLine(line);
            table.AppendLine(line);
            if (hasPruned)
                pruned.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {name}.pruned | {m.Gmac / p.Gmac:0.00}x | {one[0] / one[2]:0.00}x | {one[0] / one[2] / (m.Gmac / p.Gmac):0.00} | {many[0] / many[2]:0.00}x |"));
        }
        Console.WriteLine();
        Console.WriteLine($"target {target.Name} ({target.SimdBits}-bit), conv kernels chosen by {(measure ? "timing them on this machine" : "the cost model")}");
        Console.WriteLine(table);
        if (pruned.Length > 0)
        {
            Console.WriteLine("| pruned model | fewer MACs | batch 1: speedup vs ONNX Runtime on the original | speedup / MAC reduction | batch 32 |");
            Console.WriteLine("|---|---:|---:|---:|---:|");
            Console.WriteLine(pruned);
        }
        return 0;
    }

    private static string Us(double us) => us >= 10_000 ? string.Create(CultureInfo.InvariantCulture, $"{us / 1000:0.0} ms") : string.Create(CultureInfo.InvariantCulture, $"{us:0} µs");
}
