using Scalpel.Pruning.Calibration;
using Xunit;

namespace Scalpel.Tests;

/// <summary>
/// The paired accuracy statistics against published and hand-computed values (Python's statistics.NormalDist for
/// the quantiles, the formulas of Wilson 1927 and Newcombe 1998 written out by hand).
/// </summary>
public sealed class PairedAccuracyTests
{
    private static void Near(double expected, double actual, double tolerance = 1e-6) =>
        Assert.True(Math.Abs(expected - actual) <= tolerance, $"expected {expected}, got {actual}");

    [Fact]
    public void NormalQuantiles()
    {
        Near(1.959963984540054, PairedAccuracy.Z(0.975), 1e-8);
        Near(1.6448536269514715, PairedAccuracy.Z(0.95), 1e-8);
        Near(0, PairedAccuracy.Z(0.5), 1e-12);
        Near(-2.3263478740408408, PairedAccuracy.Z(0.01), 1e-8);
        Assert.Throws<ArgumentOutOfRangeException>(() => PairedAccuracy.Z(1));
    }

    /// <summary>Newcombe (1998), Stat. Med. 17:2635, the example with 36 concordant right, 12 and 2 discordant, none wrong: 0.0569 to 0.3404.</summary>
    [Fact]
    public void NewcombesPublishedExample()
    {
        var p = new PairedAccuracy(bothRight: 36, lost: 2, gained: 12, bothWrong: 0);
        Near(0.2, p.Delta, 1e-12);
        var (lower, upper) = p.Interval();
        Near(0.0569, lower, 5e-5);
        Near(0.3404, upper, 5e-5);
        // Lost and gained swapped: the interval mirrors.
        var (l2, u2) = new PairedAccuracy(36, 12, 2, 0).Interval();
        Near(-upper, l2, 1e-12);
        Near(-lower, u2, 1e-12);
    }

    [Fact]
    public void HandComputedIntervalsAndBounds()
    {
        var small = new PairedAccuracy(8, 5, 4, 9);
        var (l, u) = small.Interval();
        Near(-0.246277367182296, l);
        Near(0.17516109912390965, u);
        Near(-0.21662402773080056, small.LowerBound(0.95));

        // 2000 samples, 4 % disagreement, 20 more lost than gained: -1 point, 95 % interval -1.90 to -0.12 points.
        var large = new PairedAccuracy(1800, 50, 30, 120);
        Near(-0.01, large.Delta, 1e-12);
        Near(0.04, large.Disagreement, 1e-12);
        Near(0.9250, large.OriginalAccuracy, 1e-12);
        Near(0.9150, large.PrunedAccuracy, 1e-12);
        (l, u) = large.Interval();
        Near(-0.018991049875011313, l);
        Near(-0.0012066950682363946, u);
        Near(-0.017498714550677016, large.LowerBound(0.95));
    }

    [Fact]
    public void NoDisagreementStillHasAnInterval()
    {
        var p = new PairedAccuracy(900, 0, 0, 100);
        var (l, u) = p.Interval();
        Near(-0.0030614067884441386, l);
        Near(0.0030614067884441386, u);
        Assert.True(p.BudgetHolds(0.005));
        Assert.False(p.BudgetHolds(0.002));
    }

    [Fact]
    public void BudgetTestIsOneSidedAtTheStatedConfidence()
    {
        var large = new PairedAccuracy(1800, 50, 30, 120); // one-sided 95 % bound -1.75 points
        Assert.True(large.BudgetHolds(0.0175, 0.95));
        Assert.False(large.BudgetHolds(0.0174, 0.95));
        // Lower confidence, tighter bound: at 50 % the bound is the observed delta itself.
        Near(large.Delta, large.LowerBound(0.5), 1e-12);
        Assert.True(large.BudgetHolds(0.0101, 0.5));
        Assert.False(large.BudgetHolds(0.0099, 0.5));
    }

    [Fact]
    public void SamplesNeeded()
    {
        // The example: 4 % disagreement, no net change, half a point at 95 % one-sided:
        // 1.6449² 0.04 / 0.005² = 4328.87, so 4329 samples.
        var even = new PairedAccuracy(1880, 40, 40, 40);
        Assert.Equal(4329, even.SamplesNeeded(0.005));
        // Observed -1 point at 4 %: a 0.5-point budget is already broken; a 2-point one needs
        // 1.6449² (0.04 - 0.0001) / 0.01² = 1079.51 -> 1080.
        var large = new PairedAccuracy(1800, 50, 30, 120);
        Assert.Null(large.SamplesNeeded(0.005));
        Assert.Equal(1080, large.SamplesNeeded(0.02));
    }

    [Fact]
    public void FromPredictions()
    {
        int[] truth = [0, 1, 2, 3, 4, 5];
        var p = PairedAccuracy.Of([0, 1, 2, 0, 0, 5], [0, 1, 0, 3, 0, 0], truth);
        Assert.Equal((2, 2, 1, 1), (p.BothRight, p.Lost, p.Gained, p.BothWrong));
        Assert.Throws<ArgumentException>(() => PairedAccuracy.Of([0], [0, 1], truth));
        Assert.Throws<ArgumentException>(() => new PairedAccuracy(0, 0, 0, 0));
    }
}
