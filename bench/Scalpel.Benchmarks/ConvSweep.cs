using System.Diagnostics;
using System.Globalization;
using System.Runtime.Intrinsics;
using System.Text;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Scalpel.CodeGen;
using Scalpel.Onnx.Proto;
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
        new("grouped", 64, 64, 28, 3, 1, 4),
    ];

    public static int Run(string[] args)
    {
        string target = args.Length > 0 ? args[0] : "host";
        string? filter = args.Length > 1 ? args[1] : null;
        var code = CodeTarget.Resolve(target);
        double peak = PeakGmacs(code.SimdBits);
        var dir = Directory.CreateTempSubdirectory("scalpel-sweep");
        var table = new StringBuilder();
        table.AppendLine($"| shape | MMAC | ONNX Runtime µs | pixel kernel µs | channel kernel µs | chosen | speedup | GMAC/s | share of peak |");
        table.AppendLine("|---|---:|---:|---:|---:|---|---:|---:|---:|");
        var speedups = new List<double>();
        foreach (var s in Shapes.Where(s => filter is null || s.ToString().Contains(filter, StringComparison.Ordinal) || s.Family == filter))
        {
            var path = Path.Combine(dir.FullName, "conv.onnx");
            File.WriteAllBytes(path, Build(s).ToByteArray());
            var variants = s.Group == 1 ? new[] { ConvKernel.Pixels, ConvKernel.Channels } : [ConvKernel.Pixels];
            var times = Time(path, s, variants.Select(v => code with { ConvKernel = v }).ToArray());
            double ort = times[0];
            var chosen = Chosen(path, code);
            double gen = times[1 + Array.IndexOf(variants, chosen)];
            double speedup = ort / gen, gmacs = s.Macs / gen / 1e3;
            speedups.Add(speedup);
            string channels = variants.Length > 1 ? $"{times[2]:0.0}" : "-";
            var line = string.Create(CultureInfo.InvariantCulture,
                $"| {s} | {s.Macs / 1e6:0.00} | {ort:0.0} | {times[1]:0.0} | {channels} | {chosen.ToString().ToLowerInvariant()} | {speedup:0.00}x | {gmacs:0.0} | {gmacs / peak:P0} |");
            table.AppendLine(line);
            Console.WriteLine(line);
        }
        speedups.Sort();
        Console.WriteLine();
        Console.WriteLine(table);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"target {target} ({code.SimdBits}-bit), FMA peak {peak:0.0} GMAC/s; speedup worst {speedups[0]:0.00}x, median {speedups[speedups.Count / 2]:0.00}x, best {speedups[^1]:0.00}x over {speedups.Count} shapes"));
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
    private static ConvKernel Chosen(string path, CodeTarget target) =>
        ModelCompiler.Generate(path, target, "Sweep", "Conv").Source.Contains("vectorised across output channels", StringComparison.Ordinal)
            ? ConvKernel.Channels : ConvKernel.Pixels;

    /// <summary>
    /// Median µs per call of ONNX Runtime, then of the generated code for each target, timed in alternating rounds
    /// of about 20 ms each.
    /// </summary>
    private static double[] Time(string path, Shape s, CodeTarget[] targets)
    {
        var runs = targets.Select(t => GeneratedAssembly.CompileOne(ModelCompiler.Generate(path, t, "Sweep", "Conv"), "Sweep")).ToArray();
        var input = new float[s.C * s.H * s.H];
        var rng = new Random(1);
        for (int i = 0; i < input.Length; i++) input[i] = (float)rng.NextDouble();
        int outSize = s.M * s.OH * s.OH;
        var output = new float[outSize];
        var ortOutput = new float[outSize];

        using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        using var session = new InferenceSession(path, options);
        using var runOptions = new RunOptions();
        using var ortIn = OrtValue.CreateTensorValueFromMemory(input, [1, s.C, s.H, s.H]);
        using var ortOut = OrtValue.CreateTensorValueFromMemory(ortOutput, [1, s.M, s.OH, s.OH]);
        string[] inNames = [session.InputNames[0]], outNames = [session.OutputNames[0]];
        void Ort() => session.Run(runOptions, inNames, [ortIn], outNames, [ortOut]);
        var actions = new List<Action> { Ort };
        actions.AddRange(runs.Select(run => (Action)(() => run(input, output, 1))));

        Ort();
        foreach (var (run, target) in runs.Zip(targets))
        {
            Array.Clear(output);
            run(input, output, 1);
            double maxDiff = 0;
            for (int i = 0; i < outSize; i++) maxDiff = Math.Max(maxDiff, Math.Abs(output[i] - ortOutput[i]));
            if (maxDiff > 1e-3) throw new InvalidOperationException($"{s} ({target.ConvKernel}): generated differs from ONNX Runtime by {maxDiff}");
        }

        int reps = Math.Max(1, (int)(20_000 / Math.Max(1.0, Once(Ort))));
        var samples = actions.Select(_ => new List<double>()).ToArray();
        for (int round = 0; round < 11; round++)
            for (int a = 0; a < actions.Count; a++)
                samples[a].Add(Measure(actions[a], reps));
        return samples.Select(Median).ToArray();
    }

    private static double Once(Action a)
    {
        var sw = Stopwatch.StartNew();
        a();
        return sw.Elapsed.TotalMicroseconds;
    }

    private static double Measure(Action a, int reps)
    {
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < reps; i++) a();
        return sw.Elapsed.TotalMicroseconds / reps;
    }

    private static double Median(List<double> xs)
    {
        xs.Sort();
        return xs[xs.Count / 2];
    }

    /// <summary>Multiply-adds per second of 12 independent FMA chains at the given width: the ceiling for a conv kernel.</summary>
    public static double PeakGmacs(int bits)
    {
        double best = 0;
        for (int round = 0; round < 5; round++)
        {
            var sw = Stopwatch.StartNew();
            float sink = bits switch { 512 => Chains512(2_000_000), 256 => Chains256(2_000_000), _ => Chains128(2_000_000) };
            double s = sw.Elapsed.TotalSeconds;
            if (sink == 42f) Console.Write("");
            best = Math.Max(best, 2_000_000.0 * 12 * (bits / 32) / s / 1e9);
        }
        return best;
    }

    private static float Chains512(int n)
    {
        var m = Vector512.Create(0.999f);
        Vector512<float> a0 = Vector512.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (int i = 0; i < n; i++)
        {
            a0 = Vector512.FusedMultiplyAdd(a0, m, m); a1 = Vector512.FusedMultiplyAdd(a1, m, m); a2 = Vector512.FusedMultiplyAdd(a2, m, m);
            a3 = Vector512.FusedMultiplyAdd(a3, m, m); a4 = Vector512.FusedMultiplyAdd(a4, m, m); a5 = Vector512.FusedMultiplyAdd(a5, m, m);
            a6 = Vector512.FusedMultiplyAdd(a6, m, m); a7 = Vector512.FusedMultiplyAdd(a7, m, m); a8 = Vector512.FusedMultiplyAdd(a8, m, m);
            a9 = Vector512.FusedMultiplyAdd(a9, m, m); a10 = Vector512.FusedMultiplyAdd(a10, m, m); a11 = Vector512.FusedMultiplyAdd(a11, m, m);
        }
        return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    private static float Chains256(int n)
    {
        var m = Vector256.Create(0.999f);
        Vector256<float> a0 = Vector256.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (int i = 0; i < n; i++)
        {
            a0 = Vector256.FusedMultiplyAdd(a0, m, m); a1 = Vector256.FusedMultiplyAdd(a1, m, m); a2 = Vector256.FusedMultiplyAdd(a2, m, m);
            a3 = Vector256.FusedMultiplyAdd(a3, m, m); a4 = Vector256.FusedMultiplyAdd(a4, m, m); a5 = Vector256.FusedMultiplyAdd(a5, m, m);
            a6 = Vector256.FusedMultiplyAdd(a6, m, m); a7 = Vector256.FusedMultiplyAdd(a7, m, m); a8 = Vector256.FusedMultiplyAdd(a8, m, m);
            a9 = Vector256.FusedMultiplyAdd(a9, m, m); a10 = Vector256.FusedMultiplyAdd(a10, m, m); a11 = Vector256.FusedMultiplyAdd(a11, m, m);
        }
        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    private static float Chains128(int n)
    {
        var m = Vector128.Create(0.999f);
        Vector128<float> a0 = Vector128.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (int i = 0; i < n; i++)
        {
            a0 = Vector128.FusedMultiplyAdd(a0, m, m); a1 = Vector128.FusedMultiplyAdd(a1, m, m); a2 = Vector128.FusedMultiplyAdd(a2, m, m);
            a3 = Vector128.FusedMultiplyAdd(a3, m, m); a4 = Vector128.FusedMultiplyAdd(a4, m, m); a5 = Vector128.FusedMultiplyAdd(a5, m, m);
            a6 = Vector128.FusedMultiplyAdd(a6, m, m); a7 = Vector128.FusedMultiplyAdd(a7, m, m); a8 = Vector128.FusedMultiplyAdd(a8, m, m);
            a9 = Vector128.FusedMultiplyAdd(a9, m, m); a10 = Vector128.FusedMultiplyAdd(a10, m, m); a11 = Vector128.FusedMultiplyAdd(a11, m, m);
        }
        return Vector128.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }
}
