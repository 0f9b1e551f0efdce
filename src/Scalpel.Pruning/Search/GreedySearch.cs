using System.Diagnostics;
using System.Globalization;
using Scalpel.Pruning.Calibration;

namespace Scalpel.Pruning.Search;

/// <summary>
/// The greedy loop both searches share: each round tries the next step of every candidate and accepts, among the
/// steps the budget holds for (<see cref="Budget.Holds"/>) and that gain something, the one that gains most.
/// It stops when no step fits the budget.
/// </summary>
internal static class GreedySearch
{
    /// <summary>A tried step: its validation result against the original, what it gains, and how the log names it ("conv1 at 50%").</summary>
    public readonly record struct Trial(PairedAccuracy Result, double Gain, string Label);

    /// <param name="candidates">The candidates with a next step, each round.</param>
    /// <param name="tryStep">Scores a candidate's next step.</param>
    /// <param name="accept">Takes the step; returns the line the search log keeps.</param>
    /// <param name="stepsLeft">Steps left per candidate, for the progress estimate.</param>
    public static void Run<T>(Func<IEnumerable<T>> candidates, Func<T, Trial> tryStep, Func<T, double, string> accept,
        Func<IEnumerable<int>> stepsLeft, Budget budget, List<string> log, IProgress<string> say, CancellationToken cancel)
    {
        var progress = new SearchProgress(say);
        while (true)
        {
            (T Step, double Score, double Gain)? best = null;
            foreach (var candidate in candidates())
            {
                cancel.ThrowIfCancellationRequested();
                var t = tryStep(candidate);
                bool holds = budget.Holds(t.Result);
                say.Report(string.Create(CultureInfo.InvariantCulture, $"  try {t.Label}: {t.Result.PrunedAccuracy:P2}, {budget.Describe(t.Result)}"));
                progress.Tried();
                if (holds && t.Gain > 0 && (best is null || t.Gain > best.Value.Gain)) best = (candidate, t.Result.PrunedAccuracy, t.Gain);
            }
            if (best is not { } b) return;
            log.Add(accept(b.Step, b.Score));
            progress.Accepted(log[^1], stepsLeft());
        }
    }

    /// <summary>
    /// Reports each step a greedy search accepts ("  + ..." lines, which builds show at the default verbosity) with
    /// the time so far and a bound on what is left: each round tries every layer with a step left and accepts at
    /// most one step, so with R steps left over L layers at most R + (R - 1) + ... + (R - L + 1) tries remain.
    /// </summary>
    private sealed class SearchProgress(IProgress<string> say)
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private int _tries, _accepted;

        public void Tried() => _tries++;

        public void Accepted(string step, IEnumerable<int> stepsLeft)
        {
            var left = stepsLeft.Where(n => n > 0).ToList();
            int total = left.Sum();
            long bound = Enumerable.Range(0, left.Count).Sum(j => (long)(total - j));
            double perTry = _clock.Elapsed.TotalSeconds / Math.Max(1, _tries);
            say.Report(string.Create(CultureInfo.InvariantCulture,
                $"  + step {++_accepted} accepted: {step} (after {_tries} tries, {_clock.Elapsed.TotalSeconds:0} s; {(bound == 0 ? "no steps left" : $"at most {bound} more tries, about {bound * perTry:0} s at {perTry:0.0} s each")})"));
        }
    }
}
