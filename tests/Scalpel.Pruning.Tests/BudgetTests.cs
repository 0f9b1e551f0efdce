using Scalpel.Pruning.Calibration;
using Scalpel.Pruning.Data;
using Scalpel.Pruning.Search;
using Xunit;

namespace Scalpel.Tests;

/// <summary>
/// The search's accuracy guard: a step holds when the one-sided lower bound of its paired delta against the original
/// clears the budget. Each case sits at least 0.1 points from the bound it tests (the bounds, computed by hand with
/// Newcombe's method 10, are in the comments), far above the quantile approximation's error.
/// </summary>
public sealed class BudgetTests
{
    /// <summary>A budget over <paramref name="count"/> samples; Holds looks only at the paired counts it is given.</summary>
    private static Budget Of(int count, double floor, double confidence) =>
        new(new Dataset { Inputs = new float[count], Count = count, SampleSize = 1, Source = "test" }, new int[count], floor, new int[count], confidence);

    [Fact]
    public void AtHalfConfidenceTheGuardIsThePointFloor()
    {
        // Labels, original 87.25 % (1745 of 2000 samples right), budget 0.5 points: the floor is 86.75 %.
        var budget = Of(2000, 0.8725 - 0.005, 0.5);
        Assert.True(budget.Holds(new PairedAccuracy(1725, 20, 10, 245)));  // exactly -0.5 points
        Assert.False(budget.Holds(new PairedAccuracy(1724, 21, 10, 245))); // -0.55 points
    }

    [Fact]
    public void TheSameDeltaHoldsOnlyWhenFewSamplesDisagree()
    {
        var budget = Of(2000, 0.8725 - 0.005, 0.8);
        // -0.25 points either way; 80 % lower bounds -0.46 points at 1.25 % disagreement, -0.64 points at 4.25 %.
        Assert.True(budget.Holds(new PairedAccuracy(1730, 15, 10, 245)));
        Assert.False(budget.Holds(new PairedAccuracy(1700, 45, 40, 215)));
    }

    [Fact]
    public void MoreSamplesResolveTheBudget()
    {
        // The refused case above at ten times the samples: -0.25 points, 80 % lower bound -0.37 points.
        var budget = Of(20000, 0.8725 - 0.005, 0.8);
        Assert.True(budget.Holds(new PairedAccuracy(17000, 450, 400, 2150)));
    }

    [Fact]
    public void HigherConfidenceAsksForMore()
    {
        // -0.25 points at 1.25 % disagreement: lower bounds -0.46 at 80 %, -0.58 at 90 %, -0.67 points at 95 %.
        var step = new PairedAccuracy(1730, 15, 10, 245);
        Assert.True(Of(2000, 0.8725 - 0.005, 0.8).Holds(step));
        Assert.False(Of(2000, 0.8725 - 0.005, 0.9).Holds(step));
        Assert.False(Of(2000, 0.8725 - 0.005, 0.95).Holds(step));
    }

    [Fact]
    public void WithoutLabelsTheBoundIsOnTheAgreement()
    {
        // Truth is the original's own top-1: it scores 1 and every disagreement is a loss. Floor 99 % agreement.
        var budget = Of(2000, 0.99, 0.8);
        // 99.5 % agreement: 80 % lower bound 99.35 %.
        Assert.True(budget.Holds(new PairedAccuracy(1990, 10, 0, 0)));
        // 99.1 %: above the floor, but the 80 % lower bound is 98.90 %.
        Assert.False(budget.Holds(new PairedAccuracy(1982, 18, 0, 0)));
        Assert.True(Of(2000, 0.99, 0.5).Holds(new PairedAccuracy(1982, 18, 0, 0)));
    }

    [Fact]
    public void RefusalsForWantOfConfidenceAreKeptForTheWarning()
    {
        var budget = Of(2000, 0.8725 - 0.005, 0.8);
        Assert.False(budget.Holds(new PairedAccuracy(1700, 45, 40, 215))); // -0.25 points, not shown at 80 %: kept
        Assert.False(budget.Holds(new PairedAccuracy(1724, 21, 10, 245))); // -0.55 points: over budget outright
        Assert.True(budget.Holds(new PairedAccuracy(1730, 15, 10, 245)));
        Assert.Equal(45, Assert.Single(budget.Unresolved).Lost);
    }

    [Fact]
    public void TheDefaultIsTheOneSided95PercentBound()
    {
        // The default the measurements chose: -0.25 points at 1.25 % disagreement (95 % bound -0.67) is refused.
        var budget = new Budget(new Dataset { Inputs = new float[2000], Count = 2000, SampleSize = 1, Source = "test" }, new int[2000], 0.8725 - 0.005, new int[2000]);
        Assert.Equal(0.95, budget.Confidence);
        Assert.False(budget.Holds(new PairedAccuracy(1730, 15, 10, 245)));
        Assert.True(budget.Holds(new PairedAccuracy(1745, 0, 0, 255)));
    }

    [Fact]
    public void DescribeGivesTheDeltaAndTheBound()
    {
        var budget = Of(2000, 0.8725 - 0.005, 0.8);
        Assert.Equal("-0.25 points, at least -0.46 at 80 %", budget.Describe(new PairedAccuracy(1730, 15, 10, 245)));
        Assert.Equal("-0.25 points, at least -0.64 at 80 % (over budget)", budget.Describe(new PairedAccuracy(1700, 45, 40, 215)));
        Assert.Empty(budget.Unresolved); // describing is not deciding
    }
}
