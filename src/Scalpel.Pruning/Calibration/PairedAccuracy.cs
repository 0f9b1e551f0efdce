namespace Scalpel.Pruning.Calibration;

/// <summary>
/// The accuracy change of a pruned model against its original, measured on the same samples (paired): only the
/// discordant samples, where exactly one of the two is right, carry information about the difference. Gives the
/// delta, a two-sided interval (Newcombe 1998, method 10: Wilson score intervals of both accuracies combined with
/// their correlation), a one-sided test that an accuracy budget holds with a stated confidence, and the number of
/// samples that would resolve a budget at the observed disagreement. Accuracies and deltas are fractions (0.005 is
/// half a point).
/// </summary>
public sealed class PairedAccuracy
{
    /// <summary>Samples both models get right.</summary>
    public int BothRight { get; }
    /// <summary>Samples only the original gets right: the pruned model's losses.</summary>
    public int Lost { get; }
    /// <summary>Samples only the pruned model gets right: its gains.</summary>
    public int Gained { get; }
    /// <summary>Samples both get wrong.</summary>
    public int BothWrong { get; }
    public int Count => BothRight + Lost + Gained + BothWrong;

    public PairedAccuracy(int bothRight, int lost, int gained, int bothWrong)
    {
        if (bothRight < 0 || lost < 0 || gained < 0 || bothWrong < 0) throw new ArgumentOutOfRangeException(nameof(bothRight), "counts must be 0 or more");
        if ((long)bothRight + lost + gained + bothWrong is 0 or > int.MaxValue) throw new ArgumentException("expected 1 to int.MaxValue samples");
        (BothRight, Lost, Gained, BothWrong) = (bothRight, lost, gained, bothWrong);
    }

    /// <summary>From each sample's correctness under the original and the pruned model (same samples, same order).</summary>
    public static PairedAccuracy Of(IReadOnlyList<bool> original, IReadOnlyList<bool> pruned)
    {
        if (original.Count != pruned.Count) throw new ArgumentException($"{original.Count} original and {pruned.Count} pruned results: expected the same samples.");
        int a = 0, b = 0, c = 0, d = 0;
        for (int i = 0; i < original.Count; i++)
            _ = (original[i], pruned[i]) switch { (true, true) => a++, (true, false) => b++, (false, true) => c++, _ => d++ };
        return new PairedAccuracy(a, b, c, d);
    }

    /// <summary>From top-1 predictions of both models against the truth (labels, or a reference's top-1).</summary>
    public static PairedAccuracy Of(int[] originalTop1, int[] prunedTop1, int[] truth)
    {
        if (originalTop1.Length != truth.Length || prunedTop1.Length != truth.Length)
            throw new ArgumentException($"{originalTop1.Length} original, {prunedTop1.Length} pruned predictions and {truth.Length} answers: expected the same samples.");
        return Of(originalTop1.Select((p, i) => p == truth[i]).ToArray(), prunedTop1.Select((p, i) => p == truth[i]).ToArray());
    }

    public double OriginalAccuracy => (double)(BothRight + Lost) / Count;
    public double PrunedAccuracy => (double)(BothRight + Gained) / Count;
    /// <summary>Pruned minus original accuracy: (gained - lost) / samples.</summary>
    public double Delta => (double)(Gained - Lost) / Count;
    /// <summary>Fraction of samples where exactly one model is right.</summary>
    public double Disagreement => (double)(Lost + Gained) / Count;

    /// <summary>
    /// Two-sided interval for <see cref="Delta"/> at <paramref name="confidence"/> (0.95: a 95 % interval), Newcombe's
    /// method 10. It stays inside [-1, 1], is not degenerate when no sample disagrees, and needs no large-sample
    /// normality of the difference itself.
    /// </summary>
    public (double Lower, double Upper) Interval(double confidence = 0.95) => Bounds(Z(0.5 + confidence / 2));

    /// <summary>The lower end of a one-sided interval at <paramref name="confidence"/>: the delta is at least this, with that confidence.</summary>
    public double LowerBound(double confidence) => Bounds(Z(confidence)).Lower;

    /// <summary>
    /// Whether the budget holds with <paramref name="confidence"/>: the one-sided lower bound of the delta is no
    /// lower than -<paramref name="budget"/> (a drop of at most that much).
    /// </summary>
    public bool BudgetHolds(double budget, double confidence = 0.95) => LowerBound(confidence) >= -budget;

    /// <summary>
    /// Samples at which the budget would hold with <paramref name="confidence"/> if the observed disagreement rate
    /// and delta stayed as they are (normal approximation: z² (q - δ²) / (δ + budget)², q the disagreement rate);
    /// null when the observed delta already breaks the budget (no sample count resolves it). With no disagreement
    /// seen it assumes one discordant sample in this many, the smallest rate the data cannot rule out.
    /// </summary>
    public int? SamplesNeeded(double budget, double confidence = 0.95)
    {
        double delta = Delta, margin = delta + budget;
        if (margin <= 0) return null;
        double q = Math.Max(Disagreement, 1.0 / Count);
        double z = Z(confidence);
        double n = z * z * Math.Max(q - delta * delta, 1.0 / Count) / (margin * margin);
        return n >= int.MaxValue ? int.MaxValue : (int)Math.Ceiling(n);
    }

    private (double Lower, double Upper) Bounds(double z)
    {
        double n = Count, a = BothRight, b = Lost, c = Gained, d = BothWrong;
        double p1 = (a + b) / n, p2 = (a + c) / n; // original, pruned
        var (l1, u1) = Wilson(a + b, n, z);
        var (l2, u2) = Wilson(a + c, n, z);
        double denominator = (a + b) * (c + d) * (a + c) * (b + d);
        double phi = denominator > 0 ? (a * d - b * c) / Math.Sqrt(denominator) : 0;
        double delta = p2 - p1;
        double lower = delta - Math.Sqrt(Math.Max(0, Sq(p2 - l2) - 2 * phi * (p2 - l2) * (u1 - p1) + Sq(u1 - p1)));
        double upper = delta + Math.Sqrt(Math.Max(0, Sq(u2 - p2) - 2 * phi * (u2 - p2) * (p1 - l1) + Sq(p1 - l1)));
        return (Math.Max(-1, lower), Math.Min(1, upper));
    }

    private static double Sq(double x) => x * x;

    /// <summary>Wilson's score interval for a proportion of <paramref name="k"/> in <paramref name="n"/>.</summary>
    public static (double Lower, double Upper) Wilson(double k, double n, double z)
    {
        double p = k / n, z2 = z * z;
        double centre = p + z2 / (2 * n), half = z * Math.Sqrt(p * (1 - p) / n + z2 / (4 * n * n)), scale = 1 + z2 / n;
        return (Math.Max(0, (centre - half) / scale), Math.Min(1, (centre + half) / scale));
    }

    /// <summary>The standard normal quantile (Acklam's rational approximation, relative error below 1.2e-9).</summary>
    public static double Z(double p)
    {
        if (!(p > 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(p), p, "expected a probability strictly between 0 and 1");
        ReadOnlySpan<double> a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00];
        ReadOnlySpan<double> b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01];
        ReadOnlySpan<double> c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00];
        ReadOnlySpan<double> d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00];
        const double low = 0.02425;
        if (p < low || p > 1 - low)
        {
            double q = Math.Sqrt(-2 * Math.Log(p < low ? p : 1 - p));
            double x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
            return p < low ? x : -x;
        }
        double r = p - 0.5, s = r * r;
        return (((((a[0] * s + a[1]) * s + a[2]) * s + a[3]) * s + a[4]) * s + a[5]) * r / (((((b[0] * s + b[1]) * s + b[2]) * s + b[3]) * s + b[4]) * s + 1);
    }
}
