using Scalpel.Pruning.Calibration;
using Scalpel.Pruning.Data;
using Scalpel.Pruning.Search;
using Scalpel.Pruning.Training;
using Xunit;

namespace Scalpel.Tests;

/// <summary>The retraining schedule's early stop and the run's time estimate.</summary>
public sealed class ScheduleTests
{
    /// <summary>
    /// The guard of a 0.5-point budget at 95 % over 2000 validation samples whose original gets 1800 right (90 %): the
    /// floor is 89.5 %, and a step is within budget when its one-sided lower bound is -0.5 points or more.
    /// </summary>
    private static readonly Budget Guard = new(new Dataset { Inputs = new float[2000], Count = 2000, SampleSize = 1, Source = "test" }, new int[2000], 0.895, new int[2000]);

    /// <summary>
    /// A step that loses <paramref name="lost"/> of the original's right answers and gains <paramref name="gained"/>.
    /// The lower bounds in the comments are Newcombe's method 10 by hand; each case sits 0.1 points or more from the
    /// margin it tests, far above the normal quantile's approximation error.
    /// </summary>
    private static PairedAccuracy Step(int lost, int gained) => new(1800 - lost, lost, gained, 200 - gained);

    private static EarlyStopping Stop() => new(Guard, plateau: 0.001, giveUp: 0.02, clear: 0.005);

    [Fact]
    public void EarlyStopWaitsForASettledResultWithinBudget()
    {
        var stop = Stop();
        Assert.True(stop.Continue(Step(10, 10)));  // 90.0 %, bound -0.38: within budget, but one score shows no trend yet
        Assert.True(stop.Continue(Step(6, 10)));   // 90.2 %, bound -0.14: rose 0.2 points, still learning
        Assert.False(stop.Continue(Step(6, 10)));  // unchanged: settled
        Assert.Equal("within budget and settled", stop.Reason);
        Assert.Equal([0.9, 0.902, 0.902], stop.Scores);
    }

    [Fact]
    public void EarlyStopEndsAStepClearlyWithinBudgetOnlyWhenItsBoundIs()
    {
        // 90.5 %, +0.5 points, bound +0.18: clears the budget by 0.68 points, more than the 0.5 asked.
        var clear = Stop();
        Assert.False(clear.Continue(Step(2, 12)));
        Assert.Equal("clearly within budget", clear.Reason);
        // The same 90.5 % with 130 predictions changed: bound -0.44, within budget by only 0.06 points, and the guard
        // may still refuse the step after more epochs change predictions. A point score 0.5 above the floor stopped it.
        Assert.True(Stop().Continue(Step(60, 70)));
    }

    [Fact]
    public void EarlyStopEndsASettledStepOverBudget()
    {
        var stop = Stop();
        Assert.True(stop.Continue(Step(40, 30)));  // 89.5 %, bound -1.20
        Assert.True(stop.Continue(Step(30, 30)));  // 90.0 %, bound -0.65: rose half a point an epoch, may still come in
        Assert.False(stop.Continue(Step(30, 30))); // flat: the guard will refuse it
        Assert.Equal("over budget and settled", stop.Reason);
    }

    [Fact]
    public void ASettledScoreAboveTheFloorIsOverBudgetWhenItsBoundIs()
    {
        // No drop at all, but 60 predictions changed: the bound (-0.65) misses the budget, so the guard will refuse the
        // step; stopping it as accepted (the point score is 0.5 points above the floor) would only waste the epoch.
        var stop = Stop();
        Assert.True(stop.Continue(Step(30, 30)));
        Assert.False(stop.Continue(Step(30, 30)));
        Assert.Equal("over budget and settled", stop.Reason);
    }

    [Fact]
    public void EarlyStopGivesUpFarOverBudget()
    {
        var stop = Stop();
        Assert.True(stop.Continue(Step(55, 10)));  // 87.75 %: 1.75 points under the floor, may recover
        Assert.False(stop.Continue(Step(62, 10))); // 87.4 %: 2.1 points under
        Assert.Equal("far over budget", stop.Reason);
    }

    [Fact]
    public void RunClockEstimatesTheWholeRun()
    {
        var clock = new RunClock();
        Assert.Matches(@"^\d+ s elapsed$", clock.Line(5)); // no fit has ended: no estimate yet
        clock.FitStarted();
        clock.FitEnded();
        Assert.Equal(1, clock.Fits);
        Assert.Matches(@"^\d+ s elapsed, about \d+ s left \(about 5 more steps of about \d+ s\)$", clock.Line(5));
        Assert.Matches(@"^\d+ s elapsed, finishing$", clock.Line(0));
        Assert.Equal("59 s", RunClock.Format(TimeSpan.FromSeconds(59.4)));
        Assert.Equal("2 min 5 s", RunClock.Format(TimeSpan.FromSeconds(125)));
    }
}
