using System.Globalization;
using Scalpel.CodeGen;
using Scalpel.Onnx.Layers;

namespace Scalpel.Pruning.Profiling;

/// <summary>
/// For a model built for this machine: times each dense conv layer's candidate kernels (pixel GEMM, output-channel
/// vectors, Winograd where it fits) and runs the fastest. A shape is timed once per machine (KernelTimingCache), so
/// later runs choose the same kernels; the cost model keeps its own choice unless another is clearly faster.
/// </summary>
public static class MeasuredConvKernels
{
    /// <summary>
    /// How much faster than the cost model's choice another kernel must measure to replace it: closer timings are
    /// within the spread of a shared machine, and the cost model's choice does not depend on them.
    /// </summary>
    public const double Margin = 1.05;

    public static Dictionary<string, MeasuredKernel> Choose(ModelGraph model, CodeTarget target, KernelTimingCache cache, IProgress<string> say, CancellationToken cancel = default)
    {
        var convs = model.Layers.OfType<ConvLayer>().Where(c => ConvKernels.Candidates(c).Count > 1).ToList();
        string context = KernelTimingCache.Context(target);
        string Key(ConvLayer c) => $"{context} | {Shape(c)}";
        bool Timed(ConvLayer c) => cache.Get(Key(c)) is { } t && ConvKernels.Candidates(c).All(k => t.ContainsKey(k.ToString()));

        var toTime = convs.Where(c => !Timed(c)).GroupBy(Key).Select(g => g.First()).ToList();
        if (toTime.Count > 0)
        {
            say.Report($"timing the conv kernels of {toTime.Count} layer shape{(toTime.Count == 1 ? "" : "s")} on this machine");
            var jobs = toTime.SelectMany(c => ConvKernels.Candidates(c).Select(k => new LayerTimer.TimedLayer(c, model, target with { ConvKernel = k }))).ToList();
            var times = LayerTimer.Time(jobs, cancel, fastest: true);
            int i = 0;
            foreach (var c in toTime)
                cache.Set(Key(c), ConvKernels.Candidates(c).ToDictionary(k => k.ToString(), _ => Math.Round(times[i++], 2)));
            if (cache.Save() is { } warning) say.Report(warning);
        }

        var chosen = new Dictionary<string, MeasuredKernel>(StringComparer.Ordinal);
        foreach (var c in convs)
            chosen[c.Name] = Pick(c, target, cache.Get(Key(c))!);
        return chosen;
    }

    /// <summary>The fastest candidate, unless the cost model's choice is within <see cref="Margin"/> of it.</summary>
    public static MeasuredKernel Pick(ConvLayer c, CodeTarget target, IReadOnlyDictionary<string, double> microseconds)
    {
        var candidates = ConvKernels.Candidates(c);
        var costModel = ConvKernels.CostModelChoice(c, target);
        var fastest = candidates.MinBy(k => microseconds[k.ToString()]);
        var kernel = microseconds[costModel.ToString()] <= Margin * microseconds[fastest.ToString()] ? costModel : fastest;
        string times = string.Join(", ", candidates.Select(k => string.Create(CultureInfo.InvariantCulture, $"{ConvKernels.Describe(k)} {microseconds[k.ToString()]:0.00} µs")));
        return new(kernel, $"measured on this machine: {times}" + (kernel == costModel ? "" : $" (the cost model's choice: {ConvKernels.Describe(costModel)})"));
    }

    private static string Shape(ConvLayer c)
    {
        var w = c.Window;
        return string.Create(CultureInfo.InvariantCulture,
            $"conv {c.C}->{c.M} on {w.H}x{w.W} k{w.KH}x{w.KW} s{w.StrideH}x{w.StrideW} d{w.DilationH}x{w.DilationW} p{w.PadTop},{w.PadLeft},{w.PadBottom},{w.PadRight} batch {c.Batch}{(c.Activation != Activation.None ? $" +{c.Activation}" : "")}");
    }
}
