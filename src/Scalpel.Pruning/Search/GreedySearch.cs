using System.Diagnostics;
using System.Globalization;
using Scalpel.Pruning.Calibration;

namespace Scalpel.Pruning.Search;

/// <summary>
/// The greedy loop both searches share: each round tries the next step of every candidate and accepts, among the
/// steps the budget holds for (<see cref="Budget.Holds"/>) and that gain something, the one that gains most.
/// A candidate's step spans a stride of its levels, halved each time the budget refuses it (down to one level):
/// every accepted step's changed predictions widen the bound of all later ones, so where a step is refused a
/// smaller one, changing fewer predictions, often still passes. It stops when no step fits the budget, every
/// refused one at its smallest.
/// </summary>
internal static class GreedySearch
{
    /// <summary>A tried step: its validation result against the original, what it gains, and how the log names it ("conv1 at 50%").</summary>
    public readonly record struct Trial(PairedAccuracy Result, double Gain, string Label);

    /// <param name="candidates">The candidates with a next step, each round.</param>
    /// <param name="firstStride">Levels a candidate's first step spans.</param>
    /// <param name="tryStep">Scores a candidate's next step of the given stride.</param>
    /// <param name="accept">Takes the step of the given stride; returns the line the search log keeps.</param>
    /// <param name="stepsLeft">Steps left per candidate, for the progress estimate.</param>
    public static void Run<T>(Func<IEnumerable<T>> candidates, Func<T, int> firstStride, Func<T, int, Trial> tryStep, Func<T, int, double, string> accept,
        Func<IEnumerable<int>> stepsLeft, Budget budget, List<string> log, IProgress<string> say, CancellationToken cancel) where T : notnull
    {
        var progress = new SearchProgress(say);
        var stride = new Dictionary<T, int>();
        // Steps tried since the last accepted one, with the guard's answer: valid until the state changes.
        var tried = new Dictionary<(T, int), (Trial Trial, bool Holds)>();
        while (true)
        {
            (T Step, double Score, double Gain)? best = null;
            bool shrank = false;
            foreach (var candidate in candidates())
            {
                cancel.ThrowIfCancellationRequested();
                int s = stride.TryGetValue(candidate, out int known) ? known : stride[candidate] = Math.Max(1, firstStride(candidate));
                if (!tried.TryGetValue((candidate, s), out var answer))
                {
                    var t = tryStep(candidate, s);
                    tried[(candidate, s)] = answer = (t, budget.Holds(t.Result));
                    say.Report(string.Create(CultureInfo.InvariantCulture, $"  try {t.Label}: {t.Result.PrunedAccuracy:P2}, {budget.Describe(t.Result)}"));
                    progress.Tried();
                }
                var (trial, holds) = answer;
                if (!holds && s > 1) (stride[candidate], shrank) = (s / 2, true);
                if (holds && trial.Gain > 0 && (best is null || trial.Gain > best.Value.Gain)) best = (candidate, trial.Result.PrunedAccuracy, trial.Gain);
            }
            if (best is not { } b)
            {
                if (shrank) continue; // the smaller steps are tried next round
                return;
            }
            tried.Clear();
            log.Add(accept(b.Step, stride[b.Step], b.Score));
            progress.Accepted(log[^1], stepsLeft());
        }
    }

    /// <summary>
    /// Reports each step a greedy search accepts ("  + ..." lines, which builds show at the default verbosity) with
    /// the time so far and a bound on what is left: each round tries every layer with a step left and accepts at
    /// most one step, so with R steps left over L layers at most R + (R - 1) + ... + (R - L + 1) tries remain
    /// (rounds that only halve refused steps add a few).
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
