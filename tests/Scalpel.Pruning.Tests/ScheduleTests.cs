using Scalpel.Pruning.Training;
using Xunit;

namespace Scalpel.Tests;

/// <summary>The retraining schedule's early stop and the run's time estimate.</summary>
public sealed class ScheduleTests
{
    [Fact]
    public void EarlyStopWaitsForASettledScoreWithinBudget()
    {
        var stop = new EarlyStopping(floor: 0.90, plateau: 0.001, giveUp: 0.02, clear: 0.02);
        Assert.True(stop.Continue(0.905));  // within budget, but one score shows no trend yet
        Assert.True(stop.Continue(0.910));  // rose half a point: still learning
        Assert.False(stop.Continue(0.9105)); // rose 0.05 points: settled
        Assert.Equal("within budget and settled", stop.Reason);
        Assert.Equal([0.905, 0.910, 0.9105], stop.Scores);
    }

    [Fact]
    public void EarlyStopEndsAStepClearlyWithinBudgetAfterOneEpoch()
    {
        var stop = new EarlyStopping(floor: 0.90, plateau: 0.001, giveUp: 0.02, clear: 0.005);
        Assert.False(stop.Continue(0.905));
        Assert.Equal("clearly within budget", stop.Reason);
        var close = new EarlyStopping(floor: 0.90, plateau: 0.001, giveUp: 0.02, clear: 0.005);
        Assert.True(close.Continue(0.9049));
    }

    [Fact]
    public void EarlyStopEndsASettledScoreOverBudget()
    {
        var stop = new EarlyStopping(floor: 0.90, plateau: 0.001, giveUp: 0.02, clear: 0.02);
        Assert.True(stop.Continue(0.890));
        Assert.True(stop.Continue(0.895)); // over budget but rising half a point an epoch: may still come in
        Assert.False(stop.Continue(0.8955)); // flat: the step will be rejected
        Assert.Equal("over budget and settled", stop.Reason);
    }

    [Fact]
    public void EarlyStopGivesUpFarOverBudget()
    {
        var stop = new EarlyStopping(floor: 0.90, plateau: 0.001, giveUp: 0.02, clear: 0.02);
        Assert.True(stop.Continue(0.881)); // 1.9 points under: may recover
        Assert.False(stop.Continue(0.879)); // 2.1 points under
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
