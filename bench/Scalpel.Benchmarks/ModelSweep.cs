using System.Diagnostics;
using System.Globalization;
using System.Text;
using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Tests;

namespace Scalpel.Benchmarks;

/// <summary>
/// Whole models (the classification architectures that bench/models/make_models.py exports, or any folder of
/// ONNX files): generated code against ONNX Runtime at batch 1 and batch 32, and the time to generate and compile
/// the code. A file NAME.pruned.onnx beside NAME.onnx (a `dotnet scalpel prune` output) adds a row comparing the
/// pruned generated code with ONNX Runtime on the original, against the multiply-adds pruning removed.
/// </summary>
public static class ModelSweep
{
    public static int Run(string[] args)
    {
        string folder = args.Length > 0 ? args[0] : Path.Combine(TestData.RepoRoot, "bench", "models", "out");
        var target = CodeTarget.Resolve(args.Length > 1 ? args[1] : "host");
        string? only = args.Length > 2 ? args[2] : null;
        var table = new StringBuilder();
        table.AppendLine("| model | GMAC | batch 1: ONNX Runtime | generated | speedup | batch 32: ONNX Runtime | generated | speedup | generate + compile |");
        table.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        var measured = new Dictionary<string, (double Gmac, double[] One, double[] Many)>(StringComparer.Ordinal);
        foreach (var path in Directory.GetFiles(folder, "*.onnx").Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileNameWithoutExtension(path);
            if (only is not null && name != only) continue;
            var watch = Stopwatch.StartNew();
            var graph = GraphAnalyzer.Analyze(OnnxModel.Load(path));
            var run = GeneratedAssembly.CompileOne(CSharpEmitter.Emit(graph, new EmitOptions("Models", "Model", target, Path.GetFileName(path))), "Models");
            double compile = watch.Elapsed.TotalSeconds;
            double gmac = graph.Layers.Sum(l => l.Macs) / 1e9;
            var one = HeadToHead.Time(path, [run], 1, name);
            var many = HeadToHead.Time(path, [run], 32, name);
            measured[name] = (gmac, one, many);
            var line = string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {gmac:0.000} | {Us(one[0])} | {Us(one[1])} | {one[0] / one[1]:0.00}x | {Us(many[0])} | {Us(many[1])} | {many[0] / many[1]:0.00}x | {compile:0.0} s |");
            Console.WriteLine(line);
            table.AppendLine(line);
        }
        var pruned = new StringBuilder();
        foreach (var (name, p) in measured.Where(m => m.Key.EndsWith(".pruned", StringComparison.Ordinal)))
            if (measured.TryGetValue(name[..^".pruned".Length], out var o))
                pruned.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {name} | {o.Gmac / p.Gmac:0.00}x | {o.One[0] / p.One[1]:0.00}x | {o.One[0] / p.One[1] / (o.Gmac / p.Gmac):0.00} | {o.Many[0] / p.Many[1]:0.00}x |"));
        Console.WriteLine();
        Console.WriteLine($"target {target.Name} ({target.SimdBits}-bit)");
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
