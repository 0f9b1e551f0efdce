using System.Diagnostics;
using System.Globalization;
using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;
using Scalpel.Pruning.Profiling;
using Scalpel.Tests;
using static Scalpel.Tests.OnnxGraphs;

namespace Scalpel.Benchmarks;

/// <summary>
/// The sparse FC sweep of docs/performance.md: per layer shape and sparsity, the per-sample time of the generated
/// kernels (dense, grouped CSR along inputs, output-grouped) next to ONNX Runtime on the dense layer, all measured
/// interleaved in one process; then a whole LeNet-300-100 with fc1 and fc2 at 95%. Random weights with exactly the
/// given share of groups removed at random: speed does not depend on which groups a trained network keeps.
/// <c>dotnet run -c Release --project bench/Scalpel.Benchmarks -- sparsefc [--batch N] [--shapes 784x300,...]</c>
/// </summary>
public static class SparseFcSweep
{
    public const string Command = "dotnet run -c Release --project bench/Scalpel.Benchmarks -- sparsefc";
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private static readonly double[] Sparsities = [0.5, 0.7, 0.8, 0.9, 0.95, 0.97];
    private static readonly WeightFormat[] Formats = [WeightFormat.GroupedCsr, WeightFormat.OutputGrouped];

    public static int Run(string[] args)
    {
        int batch = 1;
        var shapes = new List<(int K, int N)> { (784, 300), (300, 100), (1024, 1024), (2048, 2048) };
        bool lenet = true;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--batch" when i + 1 < args.Length: batch = int.Parse(args[++i], Inv); break;
                case "--shapes" when i + 1 < args.Length:
                    shapes = args[++i].Split(',').Select(s => s.Split('x')).Select(p => (int.Parse(p[0], Inv), int.Parse(p[1], Inv))).ToList();
                    break;
                case "--no-lenet": lenet = false; break;
                default:
                    Console.Error.WriteLine($"usage: {Command} [--batch N] [--shapes KxN,...] [--no-lenet]");
                    return 2;
            }
        }
        var target = CodeTarget.Host();
        var started = Stopwatch.StartNew();
        var md = new List<string>
        {
            $"Command: `{Command}{(args.Length > 0 ? " " + string.Join(' ', args) : "")}`, target host (Vector{target.SimdBits}, groups of {target.Lanes}).",
            $"Machine: {ResultsReport.Machine()}; load average at start {ResultsReport.LoadAverage()}.",
            "",
            $"| layer (in x out) | sparsity | kept MACs | ONNX Runtime (dense) | generated dense | grouped CSR (inputs) | output-grouped | output-grouped GMAC/s | output-grouped vs dense | vs ONNX Runtime |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        };
        foreach (var (k, n) in shapes)
        {
            var rng = new Random(k * 7919 + n);
            var weight = Enumerable.Range(0, n * k).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
            var bias = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
            var models = new List<(string Name, GeneratedModel Code, long Macs)> { ("dense", Layer(k, n, weight, bias, WeightFormat.Dense, target), (long)k * n) };
            foreach (var s in Sparsities)
                foreach (var f in Formats)
                {
                    var pruned = PruneGroups(weight, n, k, f, target.Lanes, s, new Random(k + n + (int)(s * 1000)));
                    models.Add(($"{f} {s:0.00}", Layer(k, n, pruned, bias, f, target), pruned.LongCount(v => v != 0f)));
                }
            var times = Time(models.Select(m => (m.Name, m.Code)).ToList(), k, batch, batch == 1 ? SyntheticModels.SingleGemm(k, n, weight, bias).Proto : null, $"{k}x{n}");
            double dense = times["dense"], ort = times.GetValueOrDefault("ort", double.NaN);
            foreach (var s in Sparsities)
            {
                var kept = models.Single(m => m.Name == $"{WeightFormat.OutputGrouped} {s:0.00}").Macs;
                double input = times[$"{WeightFormat.GroupedCsr} {s:0.00}"], output = times[$"{WeightFormat.OutputGrouped} {s:0.00}"];
                md.Add(string.Create(Inv, $"| {k}x{n} | {s * 100:0}% | {kept:N0} | {Us(ort)} | {Us(dense)} | {Us(input)} | {Us(output)} | {kept / output / 1e9:0.0} | {dense / output:0.0}x | {(double.IsNaN(ort) ? "-" : $"{ort / output:0.0}x")} |"));
            }
        }
        if (lenet) md.AddRange(LeNet(target, batch));
        md.Add("");
        md.Add(string.Create(Inv, $"Times are medians of per-sample microseconds (batch {batch}); {started.Elapsed.TotalMinutes:0.0} minutes in all."));
        Console.WriteLine();
        foreach (var line in md) Console.WriteLine(line);
        return 0;
    }

    /// <summary>LeNet-300-100 (784-300-100-10, Relu) with random weights: dense and with fc1, fc2 at 95% in each orientation, against ONNX Runtime on the original.</summary>
    private static IEnumerable<string> LeNet(CodeTarget target, int batch)
    {
        var rng = new Random(300100);
        int[] sizes = [784, 300, 100, 10];
        var weights = Enumerable.Range(0, 3).Select(l => Enumerable.Range(0, sizes[l] * sizes[l + 1]).Select(_ => (float)((rng.NextDouble() - 0.5) * 0.1)).ToArray()).ToArray();
        var biases = Enumerable.Range(0, 3).Select(l => Enumerable.Range(0, sizes[l + 1]).Select(_ => (float)((rng.NextDouble() - 0.5) * 0.1)).ToArray()).ToArray();
        var original = LeNetProto(sizes, weights, biases);
        var models = new List<(string Name, GeneratedModel Code)> { ("dense", Emit(original, null, target)) };
        foreach (var f in Formats)
        {
            var pruned = weights.Select((w, l) => l < 2 ? PruneGroups(w, sizes[l + 1], sizes[l], f, target.Lanes, 0.95, new Random(l)) : w).ToArray();
            models.Add((f.ToString(), Emit(LeNetProto(sizes, pruned, biases), f, target)));
        }
        var times = Time(models, 784, batch, batch == 1 ? original : null, "LeNet-300-100");
        double ort = times.GetValueOrDefault("ort", double.NaN);
        yield return "";
        yield return "| LeNet-300-100, fc1 and fc2 at 95% | per sample | vs generated dense | vs ONNX Runtime on the original |";
        yield return "|---|---:|---:|---:|";
        yield return string.Create(Inv, $"| ONNX Runtime, original | {Us(ort)} | | |");
        foreach (var (name, label) in new[] { ("dense", "generated dense"), ("GroupedCsr", "grouped CSR (inputs)"), ("OutputGrouped", "output-grouped") })
            yield return string.Create(Inv, $"| {label} | {Us(times[name])} | {times["dense"] / times[name]:0.0}x | {(double.IsNaN(ort) ? "-" : $"{ort / times[name]:0.0}x")} |");
    }

    private static ModelProto LeNetProto(int[] sizes, float[][] weights, float[][] biases)
    {
        var graph = new GraphProto { Name = "lenet_300_100", Input = { BatchOf("x", sizes[0]) }, Output = { BatchOf("y", sizes[3]) } };
        string input = "x";
        for (int l = 0; l < 3; l++)
        {
            graph.Initializer.Add(Floats($"W{l}", weights[l], sizes[l + 1], sizes[l]));
            graph.Initializer.Add(Floats($"B{l}", biases[l], sizes[l + 1]));
            string output = l == 2 ? "y" : $"h{l}";
            graph.Node.Add(new NodeProto { OpType = "Gemm", Name = $"fc{l + 1}", Input = { input, $"W{l}", $"B{l}" }, Output = { l == 2 ? "y" : $"z{l}" }, Attribute = { Int("transB", 1) } });
            if (l < 2) graph.Node.Add(new NodeProto { OpType = "Relu", Name = $"relu{l + 1}", Input = { $"z{l}" }, Output = { output } });
            input = output;
        }
        return Model(graph);
    }

    private static GeneratedModel Emit(ModelProto proto, WeightFormat? hidden, CodeTarget target)
    {
        var model = GraphAnalyzer.Analyze(new OnnxModel(proto, null, "lenet-300-100"));
        if (hidden is { } f)
            model = model.WithWeights(model.Layers.OfType<DenseLayer>().Where(d => d.N != 10).ToDictionary(d => d.Name, d => d.Weights with { Format = f, GroupWidth = target.Lanes }));
        return CSharpEmitter.Emit(model, new EmitOptions("Sweep", "M", target, "lenet-300-100"));
    }

    private static GeneratedModel Layer(int k, int n, float[] weight, float[] bias, WeightFormat format, CodeTarget target)
    {
        var model = GraphAnalyzer.Analyze(SyntheticModels.SingleGemm(k, n, weight, bias));
        var d = (DenseLayer)model.Layers.Single();
        model = model.WithWeights(new Dictionary<string, LayerWeights> { [d.Name] = d.Weights with { Format = format, GroupWidth = format == WeightFormat.Dense ? 1 : target.Lanes } });
        return CSharpEmitter.Emit(model, new EmitOptions("Sweep", "M", target, "layer"));
    }

    /// <summary>
    /// Compiles every model in one assembly and times them interleaved with ONNX Runtime (batch 1 only) on the given
    /// original: per-sample seconds by name, "ort" for ONNX Runtime.
    /// </summary>
    private static Dictionary<string, double> Time(List<(string Name, GeneratedModel Code)> models, int inputSize, int batch, ModelProto? ortModel, string label)
    {
        var sources = models.Select((m, i) => m.Code.Source.Replace("namespace Sweep;", $"namespace Sweep{i};")).ToList();
        var compiled = RoslynCompiler.Compile($"Sweep.{label}", sources);
        var rng = new Random(1);
        var x = Enumerable.Range(0, batch * inputSize).Select(_ => (float)rng.NextDouble()).ToArray();
        var variants = new List<(string Name, Func<int, double> Time)>();
        for (int i = 0; i < models.Count; i++)
        {
            var run = compiled.Instantiate($"Sweep{i}.M", models[i].Code);
            var y = new float[batch * OutputSize(models[i].Code)];
            variants.Add((models[i].Name, calls =>
            {
                var sw = Stopwatch.StartNew();
                for (int c = 0; c < calls; c++) run(x, y, batch);
                return sw.Elapsed.TotalSeconds;
            }));
        }
        string? path = null;
        ResultsReport.OrtBatch1? ort = null;
        if (ortModel is not null)
        {
            path = Path.Combine(Path.GetTempPath(), $"scalpel-sweep-{Environment.ProcessId}.onnx");
            new OnnxModel(ortModel, null, label).Save(path);
            ort = new ResultsReport.OrtBatch1(path, x.AsSpan(0, inputSize));
            variants.Add(("ort", ort.Time));
        }
        try
        {
            ResultsReport.Log($"{label}: timing {variants.Count} variants interleaved, batch {batch}");
            var timings = ResultsReport.Measure(variants);
            return variants.Select((v, i) => (v.Name, timings[i].Median / batch)).ToDictionary(t => t.Name, t => t.Item2);
        }
        finally
        {
            ort?.Dispose();
            if (path is not null) File.Delete(path);
            compiled.Unload();
        }
    }

    private static int OutputSize(GeneratedModel code)
    {
        const string Marker = "public const int OutputSize = ";
        int at = code.Source.IndexOf(Marker, StringComparison.Ordinal) + Marker.Length;
        return int.Parse(code.Source.AsSpan(at, code.Source.IndexOf(';', at) - at), Inv);
    }

    /// <summary>
    /// Removes exactly round(s x groups) groups chosen at random: along inputs, aligned runs of g columns of a row
    /// (the cols % g tail stays, as pruning leaves it); along outputs, one column of a block of g rows.
    /// </summary>
    private static float[] PruneGroups(float[] weight, int rows, int cols, WeightFormat format, int g, double sparsity, Random rng)
    {
        var result = (float[])weight.Clone();
        var groups = new List<(int Row, int Col)>();
        if (format == WeightFormat.OutputGrouped)
        {
            for (int r = 0; r < rows; r += g) for (int c = 0; c < cols; c++) groups.Add((r, c));
        }
        else for (int r = 0; r < rows; r++) for (int c = 0; c + g <= cols; c += g) groups.Add((r, c));
        var order = groups.ToArray();
        rng.Shuffle(order);
        foreach (var (r0, c0) in order.Take((int)Math.Round(sparsity * order.Length)))
        {
            if (format == WeightFormat.OutputGrouped)
                for (int r = r0; r < Math.Min(rows, r0 + g); r++) result[r * cols + c0] = 0f;
            else Array.Clear(result, r0 * cols + c0, g);
        }
        return result;
    }

    private static string Us(double seconds) => double.IsNaN(seconds) ? "-" : (seconds * 1e6).ToString(seconds < 1e-5 ? "0.00" : "0.0", Inv) + " µs";
}
