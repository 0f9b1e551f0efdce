using System.Diagnostics;
using System.Runtime.Intrinsics;
using Microsoft.ML.OnnxRuntime;

namespace Scalpel.Benchmarks;

/// <summary>
/// Generated code against ONNX Runtime (CPU, one thread) on the same model and input in one process, timed in
/// alternating rounds so that the machine's load falls on both alike.
/// </summary>
public static class HeadToHead
{
    /// <summary>
    /// Median µs per call of ONNX Runtime, then of each generated run, over 11 alternating rounds of about 20 ms
    /// each; every generated run is first checked against ONNX Runtime's output.
    /// </summary>
    /// <param name="others">Runs of another model with the same input and output shapes (a pruned copy), timed in
    /// the same rounds but not compared with this model's outputs.</param>
    public static double[] Time(string path, IReadOnlyList<RunBatch> runs, int batch, string label, IReadOnlyList<RunBatch>? others = null)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        using var session = new InferenceSession(path, options);
        string[] inNames = [session.InputNames[0]], outNames = [session.OutputNames[0]];
        long[] inShape = [batch, .. session.InputMetadata[inNames[0]].Dimensions.Skip(1).Select(d => (long)d)];
        long[] outShape = [batch, .. session.OutputMetadata[outNames[0]].Dimensions.Skip(1).Select(d => (long)d)];
        var input = new float[inShape.Aggregate(1L, (a, d) => a * d)];
        var rng = new Random(1);
        for (int i = 0; i < input.Length; i++) input[i] = (float)rng.NextDouble();
        var output = new float[outShape.Aggregate(1L, (a, d) => a * d)];
        var ortOutput = new float[output.Length];
        using var runOptions = new RunOptions();
        using var ortIn = OrtValue.CreateTensorValueFromMemory(input, inShape);
        using var ortOut = OrtValue.CreateTensorValueFromMemory(ortOutput, outShape);
        void Ort() => session.Run(runOptions, inNames, [ortIn], outNames, [ortOut]);
        var actions = new List<Action> { Ort };
        actions.AddRange(runs.Concat(others ?? []).Select(run => (Action)(() => run(input, output, batch))));

        Ort();
        double scale = ortOutput.Max(Math.Abs) + 1e-6;
        for (int r = 0; r < runs.Count; r++)
        {
            Array.Clear(output);
            runs[r](input, output, batch);
            double maxDiff = 0;
            for (int i = 0; i < output.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(output[i] - ortOutput[i]));
            if (maxDiff > 1e-3 * scale) throw new InvalidOperationException($"{label} (variant {r}): generated differs from ONNX Runtime by {maxDiff}");
            Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{label} (variant {r}) batch {batch}: largest |generated - ONNX Runtime| {maxDiff:G3}, {maxDiff / scale:G3} of the largest output"));
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

    public static double Median(List<double> xs)
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
