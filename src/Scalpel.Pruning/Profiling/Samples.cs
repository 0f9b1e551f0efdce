namespace Scalpel.Pruning.Profiling;

/// <summary>Statistics of timing samples, for every timer (LayerTimer, KernelProfiler).</summary>
public static class Samples
{
    /// <summary>The middle value; for an even count the mean of the two middle values.</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        int n = sorted.Length;
        if (n == 0) throw new ArgumentException("the median of no samples", nameof(values));
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }
}
