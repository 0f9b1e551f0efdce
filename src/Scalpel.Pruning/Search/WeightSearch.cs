using System.Globalization;
using Scalpel.Onnx.Layers;
using Scalpel.Pruning.Calibration;
using Scalpel.Pruning.Data;
using Scalpel.Pruning.Methods;
using Scalpel.Pruning.Planning;

namespace Scalpel.Pruning.Search;

/// <summary>
/// Weight pruning over a baseline: calibration statistics per layer, fixed sparsities, the greedy search for each
/// layer's sparsity within the budget, and the sequential refit of the chosen levels. Layers' levels live in their
/// plans; weights only in the <see cref="PruneState"/> each step derives.
/// </summary>
internal sealed class WeightSearch(PruneState baseline, List<LayerPlan> plans, Criterion criterion, PruneOptions o, List<string> log, IProgress<string> say)
{
    private IEnumerable<LayerPlan> Prunable => plans.Where(p => p.Candidates.Length > 0);

    /// <summary>The baseline with every plan at its level, or <paramref name="level"/>'s where given.</summary>
    public PruneState At(Func<LayerPlan, int>? level = null) => baseline.With(plans
        .Select(p => (Plan: p, Level: level?.Invoke(p) ?? p.Level)).Where(x => x.Level >= 0)
        .Select(x => KeyValuePair.Create(x.Plan.Layer.Name, x.Plan.At(x.Level, criterion))));

    /// <summary>Second moments of each prunable layer's input on the calibration set.</summary>
    public void Calibrate(Dataset calibration)
    {
        if (!Prunable.Any()) return;
        say.Report($"calibrating on {calibration.Count} samples ({calibration.Source})");
        using var runner = new OrtRunner(baseline.BaselineOnnx, plans.Select(p => p.Input));
        var tensors = runner.Run(calibration);
        foreach (var p in Prunable)
        {
            o.Cancellation.ThrowIfCancellationRequested();
            p.Stats = p.Statistics(tensors[p.Input], tensors[p.Input], calibration.Count);
        }
    }

    /// <summary>Without data to check accuracy against: each layer at the highest level up to a conservative sparsity.</summary>
    public void DataFree()
    {
        foreach (var p in Prunable)
            p.Level = Array.FindLastIndex(p.Candidates, s => s <= Math.Max(Planner.DataFreeSparsity, p.Candidates[0]));
    }

    /// <summary>
    /// Layers with a sparsity the user fixed (`--sparsity`) are pruned to it whatever the accuracy guard says; when
    /// the guard would have refused them, a warning says so.
    /// </summary>
    public void ApplyFixed(Budget budget, List<ReportWarning> warnings)
    {
        var fixedPlans = plans.Where(p => p.Fixed && p.Candidates.Length > 0).ToList();
        if (fixedPlans.Count == 0) return;
        foreach (var p in fixedPlans)
        {
            o.Cancellation.ThrowIfCancellationRequested();
            p.Level = 0;
        }
        var result = budget.Paired(At().Onnx());
        double score = result.PrunedAccuracy;
        var names = string.Join(", ", fixedPlans.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Layer.Name} {p.Sparsity:P0}")));
        log.Add(string.Create(CultureInfo.InvariantCulture, $"fixed sparsity as asked: {names}, validation {score:P2}"));
        say.Report(string.Create(CultureInfo.InvariantCulture, $"fixed sparsity as asked: {names}: validation {score:P2}, {budget.Describe(result)}"));
        if (!budget.Holds(result))
            warnings.Add(new(ReportWarning.FixedSparsityOverBudget, string.Create(CultureInfo.InvariantCulture,
                $"the fixed sparsity asked for ({names}) takes the validation score to {score:P2}, which the accuracy guard cannot show to be above its floor {budget.Floor:P2}: {budget.Describe(result)}; applied as asked. Without --sparsity the search would have refused it.")));
    }

    /// <summary>
    /// Each round tries one more sparsity step on every layer and takes the step with the largest predicted time
    /// saving (Traditional: the largest size saving) among those within the budget. A layer's first steps span
    /// <see cref="FirstStride"/> levels, single levels once the budget refused one.
    /// </summary>
    public void Run(Budget budget) => GreedySearch.Run(
        () => plans.Where(p => p.Level + 1 < p.Candidates.Length),
        _ => FirstStride,
        (p, stride) =>
        {
            int next = Next(p, stride);
            var result = budget.Paired(At(q => q == p ? next : q.Level).Onnx());
            // Scalpel ranks steps by predicted time saved, Traditional by weights removed; weights removed
            // also break ties (a step at the crossover saves no time yet but opens the next ones).
            double removed = p.Layer.Weight.Length * (p.Candidates[next] - p.Sparsity);
            double gain = o.Method == Method.Traditional ? removed : p.Layer.Macs * (p.RelativeTime(p.Level) - p.RelativeTime(next)) + 1e-3 * removed;
            return new(result, gain, string.Create(CultureInfo.InvariantCulture, $"{p.Layer.Name} at {p.Candidates[next]:P0}"));
        },
        (p, stride, score) =>
        {
            p.Level = Next(p, stride);
            return string.Create(CultureInfo.InvariantCulture, $"{p.Layer.Name}: sparsity {p.Sparsity:P0}, validation {score:P2}");
        },
        () => plans.Select(p => p.Candidates.Length - 1 - p.Level), budget, log, say, o.Cancellation);

    /// <summary>Levels a layer's first steps span: 10 points of sparsity on the 5-point grid of <see cref="Planner.Levels"/>.</summary>
    private const int FirstStride = 2;

    private static int Next(LayerPlan p, int stride) => Math.Min(p.Level + stride, p.Candidates.Length - 1);

    /// <summary>
    /// The search refit each layer on the original model's inputs; refitting again in layer order against the inputs
    /// the pruned earlier layers now produce (the cross term between layers, docs/pruning.md) usually recovers
    /// accuracy. Returns that state and its validation result when its score is at least <paramref name="score"/> and
    /// the budget holds for it, else null.
    /// </summary>
    public (PruneState State, PairedAccuracy Result)? SequentialRefit(Dataset calibration, Budget budget, double score)
    {
        var chosen = plans.Where(p => p.Level >= 0).ToList();
        if (chosen.Count < 2) return null;
        var sequential = baseline;
        using (var originalRunner = new OrtRunner(baseline.BaselineOnnx, chosen.Select(p => p.Input)))
        {
            var originalInputs = originalRunner.Run(calibration);
            foreach (var p in chosen)
            {
                o.Cancellation.ThrowIfCancellationRequested();
                using var runner = new OrtRunner(sequential.Onnx(), [p.Input]);
                var stats = p.Statistics(runner.Run(calibration)[p.Input], originalInputs[p.Input], calibration.Count);
                var refit = WeightPruning.Prune(p.Layer.Weight, p.Rows, p.Cols, p.GroupWidth, p.Sparsity, criterion, stats, p.AlongOutputs).Weight;
                sequential = sequential.With(p.Layer.Name, p.Weights(refit, p.Layer.Bias));
            }
        }
        var result = budget.Paired(sequential.Onnx());
        double refitScore = result.PrunedAccuracy;
        say.Report(string.Create(CultureInfo.InvariantCulture, $"sequential refit: validation {refitScore:P2} (independent refit {score:P2})"));
        if (refitScore < score || !budget.Holds(result)) return null;
        log.Add(string.Create(CultureInfo.InvariantCulture, $"sequential least-squares refit against the pruned inputs: validation {refitScore:P2}"));
        return (sequential, result);
    }
}
