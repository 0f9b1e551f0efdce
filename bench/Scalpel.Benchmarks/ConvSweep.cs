using System.Globalization;
using System.Text;
using Google.Protobuf;
using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;
using Scalpel.Pruning.Profiling;
using Scalpel.Tests;
using static Scalpel.Tests.OnnxGraphs;

namespace Scalpel.Benchmarks;

/// <summary>
/// One-layer Conv(+bias)+Relu models over a sweep of shapes: generated code against ONNX Runtime (one thread)
/// at batch 1, interleaved in one process. Each shape is timed in rounds; the table gives medians, GMAC/s
/// and the share of this machine's measured FMA peak at the target's vector width.
/// </summary>
public static class ConvSweep
{
    public sealed record Shape(string Family, int C, int M, int H, int K, int Stride, int Group = 1, int Dilation = 1)
    {
        public int Pad => Dilation * (K - 1) / 2;
        public int OH => (H + 2 * Pad - Dilation * (K - 1) - 1) / Stride + 1;
        public long Macs => (long)M * OH * OH * (C / Group) * K * K;
        public override string ToString() =>
            $"{C}->{M} {K}x{K} s{Stride}{(Group > 1 ? (Group == C ? " dw" : $" g{Group}") : "")}{(Dilation > 1 ? $" d{Dilation}" : "")} on {H}x{H}";
    }

    /// <summary>Shapes of common classification networks: maps 7-112, channels 1-512, kernels 1/3/5/7, strides 1/2, depthwise.</summary>
    public static readonly Shape[] Shapes =
    [
        new("first", 1, 32, 28, 5, 1), new("first", 3, 32, 112, 3, 2), new("first", 3, 64, 112, 7, 2), new("first", 3, 16, 56, 3, 1),
        new("1x1", 16, 64, 56, 1, 1), new("1x1", 64, 64, 56, 1, 1), new("1x1", 32, 192, 28, 1, 1), new("1x1", 128, 128, 28, 1, 1),
        new("1x1", 256, 256, 14, 1, 1), new("1x1", 512, 512, 7, 1, 1), new("1x1", 64, 128, 56, 1, 2),
        new("3x3", 16, 16, 56, 3, 1), new("3x3", 32, 32, 28, 3, 1), new("3x3", 64, 64, 56, 3, 1), new("3x3", 64, 64, 14, 3, 1),
        new("3x3", 128, 128, 28, 3, 1), new("3x3", 256, 256, 14, 3, 1), new("3x3", 512, 512, 7, 3, 1), new("3x3", 16, 32, 28, 3, 1),
        new("3x3", 64, 64, 28, 3, 1, Dilation: 2),
        new("3x3 s2", 64, 128, 56, 3, 2), new("3x3 s2", 128, 256, 28, 3, 2), new("3x3 s2", 256, 512, 14, 3, 2),
        new("5x5", 32, 32, 14, 5, 1), new("5x5", 32, 64, 7, 5, 1), new("5x5", 64, 64, 28, 5, 1),
        new("7x7", 32, 32, 28, 7, 1),
        new("dw", 32, 32, 112, 3, 1, 32), new("dw", 144, 144, 56, 3, 1, 144), new("dw", 192, 192, 28, 3, 1, 192),
        new("dw", 384, 384, 14, 3, 1, 384), new("dw", 960, 960, 7, 3, 1, 960), new("dw", 96, 96, 112, 3, 2, 96),
        new("dw", 144, 144, 56, 3, 2, 144), new("dw", 672, 672, 14, 5, 1, 672),
        new("dw", 240, 240, 28, 3, 2, 240), new("dw", 576, 576, 14, 3, 2, 576), new("dw", 672, 672, 14, 5, 2, 672),
        new("grouped", 64, 64, 28, 3, 1, 4),
    ];

    public static int Run(string[] args)
    {
        string target = args.Length > 0 ? args[0] : "host";
        string? filter = args.Length > 1 ? args[1] : null;
        var code = CodeTarget.Resolve(target);
        // On the host target the kernel is the one `prune --target host` would time and choose (its cache included).
        bool measure = target == "host" && LayerTimer.Accelerated(code);
        var cache = new KernelTimingCache(KernelTimingCache.DefaultPath);
        double peak = HeadToHead.PeakGmacs(code.SimdBits);
        var dir = Directory.CreateTempSubdirectory("scalpel-sweep");
        var table = new StringBuilder();
        table.AppendLine($"| shape | MMAC | ONNX Runtime µs | pixel kernel µs | channel kernel µs | Winograd µs | Winograd tiles µs | chosen | speedup | GMAC/s | share of peak |");
        table.AppendLine("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|");
        var speedups = new List<double>();
        foreach (var s in Shapes.Where(s => filter is null || s.ToString().Contains(filter, StringComparison.Ordinal) || s.Family == filter))
        {
            var path = Path.Combine(dir.FullName, "conv.onnx");
            File.WriteAllBytes(path, Build(s).ToByteArray());
            var layer = GraphAnalyzer.Analyze(OnnxModel.Load(path)).Layers.OfType<ConvLayer>().Single();
            var variants = ConvKernels.Candidates(layer) is { Count: > 0 } candidates ? candidates.ToArray() : [ConvKernel.Pixels];
            var times = Time(path, s, variants.Select(v => code with { ConvKernel = v }).ToArray());
            double ort = times[0];
            var chosen = measure ? Measured(path, code, cache) : Chosen(path, code);
            double gen = times[1 + Array.IndexOf(variants, chosen)];
            double speedup = ort / gen, gmacs = s.Macs / gen / 1e3;
            speedups.Add(speedup);
            string Column(ConvKernel k) => Array.IndexOf(variants, k) is var i and >= 0 ? $"{times[1 + i]:0.0}" : "-";
            string channels = Column(ConvKernel.Channels), wino = Column(ConvKernel.Winograd), tiles = Column(ConvKernel.WinogradTiles);
            var line = string.Create(CultureInfo.InvariantCulture,
                $"| {s} | {s.Macs / 1e6:0.00} | {ort:0.0} | {times[1]:0.0} | {channels} | {wino} | {tiles} | {chosen.ToString().ToLowerInvariant()} | {speedup:0.00}x | {gmacs:0.0} | {gmacs / peak:P0} |");
            table.AppendLine(line);
            Console.WriteLine(line);
        }
        speedups.Sort();
        Console.WriteLine();
        Console.WriteLine(table);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"target {target} ({code.SimdBits}-bit), kernels chosen by {(measure ? "timing them (MeasuredConvKernels)" : "the cost model")}, FMA peak {peak:0.0} GMAC/s; speedup worst {speedups[0]:0.00}x, median {speedups[speedups.Count / 2]:0.00}x, best {speedups[^1]:0.00}x over {speedups.Count} shapes"));
        dir.Delete(true);
        return 0;
    }

    private static ModelProto Build(Shape s)
    {
        var rng = new Random(s.GetHashCode());
        float[] Rand(int n, float scale) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();
        int oh = s.OH;
        var conv = new NodeProto
        {
            OpType = "Conv", Name = "conv", Input = { "x", "W", "B" }, Output = { "c" },
            Attribute =
            {
                Ints("kernel_shape", s.K, s.K), Ints("strides", s.Stride, s.Stride), Ints("pads", s.Pad, s.Pad, s.Pad, s.Pad),
                Ints("dilations", s.Dilation, s.Dilation), Int("group", s.Group),
            },
        };
        var relu = new NodeProto { OpType = "Relu", Name = "relu", Input = { "c" }, Output = { "y" } };
        var graph = new GraphProto
        {
            Name = "conv_sweep", Node = { conv, relu },
            Initializer = { Floats("W", Rand(s.M * s.C / s.Group * s.K * s.K, 0.1f), s.M, s.C / s.Group, s.K, s.K), Floats("B", Rand(s.M, 0.1f), s.M) },
            Input = { BatchOf("x", s.C, s.H, s.H) },
            Output = { BatchOf("y", s.M, oh, oh) },
        };
        return Model(graph);
    }

    /// <summary>The kernel the emitter picks for the model's conv on its own.</summary>
    private static ConvKernel Chosen(string path, CodeTarget target)
    {
        var source = ModelCompiler.Generate(path, target, "Sweep", "Conv").Source;
        return source.Contains("by two-dimensional Winograd F(", StringComparison.Ordinal) ? ConvKernel.WinogradTiles
            : source.Contains("by Winograd F(", StringComparison.Ordinal) ? ConvKernel.Winograd
            : source.Contains("vectorised across output channels", StringComparison.Ordinal) ? ConvKernel.Channels : ConvKernel.Pixels;
    }

    /// <summary>The kernel timing chooses for the model's conv on this machine (the cost model's for a grouped conv).</summary>
    private static ConvKernel Measured(string path, CodeTarget target, KernelTimingCache cache)
    {
        var graph = GraphAnalyzer.Analyze(OnnxModel.Load(path));
        var chosen = MeasuredConvKernels.Choose(graph, target, cache, new Progress<string>(_ => { }));
        return chosen.Values.SingleOrDefault()?.Kernel ?? Chosen(path, target);
    }

    private static double[] Time(string path, Shape s, CodeTarget[] targets)
    {
        var runs = targets.Select(t => GeneratedAssembly.CompileOne(ModelCompiler.Generate(path, t, "Sweep", "Conv"), "Sweep")).ToArray();
        return HeadToHead.Time(path, runs, 1, s.ToString());
    }
}
