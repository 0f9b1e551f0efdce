using System.Diagnostics;
using System.Globalization;
using Scalpel.CodeGen;
using Scalpel.Onnx.Layers;
using Scalpel.Pruning.Calibration;
using Scalpel.Pruning.Data;
using Scalpel.Pruning.Methods;
using Scalpel.Pruning.Planning;
using Scalpel.Pruning.Profiling;
using Scalpel.Pruning.Targets;

namespace Scalpel.Pruning.Reporting;

/// <summary>The report of a run: per layer of the original model, what pruning did to it, its bytes and predicted time.</summary>
internal static class ReportBuilder
{
    public static PruneReport Build(PruneOptions o, ModelGraph original, ModelGraph model, List<LayerPlan> plans, Dictionary<string, (int Kept, int Channels)> nodes,
        Criterion criterion, Dataset? calibration, Dataset? validation, double? before, double? after, List<string> search)
    {
        var layers = new List<LayerReport>();
        long denseTotal = 0, prunedTotal = 0;
        double denseMacs = 0, predictedMacs = 0;
        foreach (var layer in original.Layers.OfType<WeightedLayer>())
        {
            var final = (WeightedLayer)model.Layers.First(l => l.Name == layer.Name);
            var plan = plans.FirstOrDefault(p => p.Layer.Name == layer.Name);
            long weights = layer.Weight.LongLength;
            long dense = 4 * weights;
            long values = 4 * final.Weight.LongLength, indices = 0, pointers = 0;
            string format = "dense";
            if (plan is { Level: >= 0, SlowerThanDense: null })
            {
                var m = SparseMatrix.For(plan.Format, final.Weight, plan.Rows, plan.Cols, plan.GroupWidth);
                values = 4L * (m.Values.Length + m.Tail.Length);
                indices = (long)m.IndexBytes * m.Entries;
                pointers = (long)m.RowStartBytes * m.RowStarts.Length;
                format = plan.Format switch { WeightFormat.Csr => "CSR", WeightFormat.OutputGrouped => $"output-grouped (G={plan.GroupWidth})", _ => $"grouped CSR (G={plan.GroupWidth})" };
            }
            // Along outputs the values hold a partial block's padding, and a layer run dense holds its zeros: count the weights kept.
            double kept = plan is { Level: >= 0 } && (plan.AlongOutputs || plan.SlowerThanDense is not null)
                ? final.Weight.Count(v => v != 0f) / (double)weights : values / 4.0 / weights;
            var techniques = new List<string>();
            if (nodes.TryGetValue(layer.Name, out var n)) techniques.Add($"node pruning ({n.Kept}/{n.Channels} kept)");
            if (plan is { Level: >= 0 }) techniques.Add(plan.Technique);
            if (techniques.Count == 0 && final.Weight.LongLength < weights) techniques.Add("inputs removed by node pruning upstream");
            string? note = plan?.SlowerThanDense ?? plan?.Note ?? (plan is { Level: < 0, Candidates.Length: > 0 } ? $"{plan.Technique}: no sparsity step kept the validation score within budget" : null);
            // A layer without a weight plan was left to node pruning (or is grouped): say why it was not pruned.
            if (plan is null && !nodes.ContainsKey(layer.Name) && final.Weight.LongLength == weights)
                note = o.Method != Method.Scalpel ? null
                    : o.Target.Parallelism == Parallelism.Low && layer.Grouped ? "grouped or depthwise conv: left dense"
                    : NodePruning.LeftAloneReason(original, layer) ?? "no removable channel group (residual Add, Concat or output), or no step within budget";
            denseTotal += dense;
            denseMacs += layer.Macs;
            prunedTotal += values + indices + pointers;
            layers.Add(new LayerReport
            {
                Name = layer.Name, Kind = layer.Family.Label(),
                Technique = techniques.Count == 0 ? "none" : string.Join(" + ", techniques), Format = format, KeptFraction = kept,
                DenseBytes = dense, Bytes = values + indices + pointers, ValueBytes = values, IndexBytes = indices, RowPointerBytes = pointers,
                Macs = plan is { Level: >= 0 } ? (long)Math.Round(final.Macs * (1 - plan.Sparsity)) : final.Macs,
                PredictedRelativeTime = (double)final.Macs / Math.Max(1, layer.Macs) * (plan?.RelativeTime(plan.Level) ?? 1),
                Note = note,
            });
            predictedMacs += layer.Macs * layers[^1].PredictedRelativeTime;
        }
        return new PruneReport
        {
            Model = Path.GetFileName(o.ModelPath), Target = o.Target.Name, Method = o.Method.ToString(),
            Criterion = criterion == Criterion.DataAware ? "data-aware (w' H w per group; E[a^2] x consumer weight energy per node)" : "magnitude (|w|, RMS per group; filter L2 norm per node)",
            Reconstruction = plans.Any(p => p.Stats is not null) || nodes.Count > 0 && calibration is not null
                ? $"least-squares refit per output row, exact Cholesky solve, damping {WeightPruning.Damping} x mean diag(H): weight-pruned layers on their kept weights; the layer after a node-pruned one on its kept inputs plus a bias correction (conv: im2col patches, {ConsumerRefit.PositionsPerSample} positions per image)"
                : "none (no calibration data)",
            Layers = layers, DenseBytes = denseTotal, PrunedBytes = prunedTotal, PredictedSpeedup = denseMacs / Math.Max(1, predictedMacs),
            AccuracyMetric = validation is null ? "none" : validation.Labels is null ? "agreement" : "accuracy",
            AccuracyBefore = before, AccuracyAfter = after, MaxAccuracyDrop = validation?.Labels is null ? null : o.MaxAccuracyDrop, MinAgreement = validation is { Labels: null } ? o.MinAgreement : null,
            ValidationSamples = validation?.Count ?? 0, CalibrationSamples = calibration?.Count ?? 0, Search = search,
        };
    }

    /// <summary>
    /// Sets the report's interval for the accuracy delta; a warning (SCALPEL2004) when, at 95% confidence, the
    /// validation set cannot show that the budget holds for the delta it measured, with about how many samples would.
    /// </summary>
    public static ReportWarning? Interval(PruneReport report, PairedAccuracy paired, double budgetPoints)
    {
        var (lower, upper) = paired.Interval();
        report.AccuracyDeltaInterval = new DeltaInterval(lower, upper);
        if (paired.BudgetHolds(budgetPoints / 100) || paired.Delta < -budgetPoints / 100) return null;
        string needed = paired.SamplesNeeded(budgetPoints / 100) is { } n ? string.Create(CultureInfo.InvariantCulture, $"about {n:N0} samples would at this disagreement rate") : "no sample count would at this delta";
        return new(ReportWarning.ValidationTooSmall, string.Create(CultureInfo.InvariantCulture,
            $"the validation set ({paired.Count} samples, {paired.Lost} lost and {paired.Gained} gained by the pruned model) cannot show the budget of {budgetPoints} points holds: the accuracy delta {100 * paired.Delta:+0.00;-0.00} points has a 95% interval of {100 * lower:+0.00;-0.00} to {100 * upper:+0.00;-0.00}; {needed}. On unseen data the delta may exceed the budget: validate on more samples."));
    }

    /// <summary>
    /// A warning (SCALPEL2004) when the accuracy guard refused steps whose validation delta was within the budget
    /// only because the validation set could not show it with the guard's confidence, with about how many samples
    /// would show it for the most promising of them.
    /// </summary>
    public static ReportWarning? Refused(IReadOnlyList<PairedAccuracy> refused, double confidence, double budgetPoints)
    {
        var closest = refused.Select(r => (Result: r, Needed: r.SamplesNeeded(budgetPoints / 100, confidence))).Where(r => r.Needed is not null).OrderBy(r => r.Needed).FirstOrDefault();
        if (closest.Result is not { } r) return null;
        double lower = r.LowerBound(confidence);
        return new(ReportWarning.ValidationTooSmall, string.Create(CultureInfo.InvariantCulture,
            $"the validation set ({r.Count} samples) is too small to resolve the budget of {budgetPoints} points: the search refused {refused.Count} step(s) whose validation delta was within it but not its one-sided {confidence:P0} lower bound (the closest: {100 * r.Delta:+0.00;-0.00} points, at least {100 * lower:+0.00;-0.00}, {r.Lost} lost and {r.Gained} gained); about {closest.Needed:N0} samples would show it at that disagreement rate. Validate on more samples to prune further within the budget."));
    }

    /// <summary>Adds the run's warnings and, when asked, each layer's time measured here; says the summary line.</summary>
    public static void Finish(PruneReport report, PruneOptions o, ModelGraph original, ModelGraph model, List<LayerPlan> chosen, Criterion criterion,
        Dataset? calibration, Dataset? validation, double? before, double? after, List<ReportWarning> warnings, IProgress<string> say)
    {
        report.Warnings.AddRange(warnings);
        if (calibration is null && validation is null)
            report.Warnings.Add(new(ReportWarning.NoData, string.Create(CultureInfo.InvariantCulture,
                $"no calibration or validation data: pruned data-free (up to {Planner.DataFreeSparsity:P0} per layer, {criterion} criterion, no refit) and the accuracy was not checked. Give calibration and validation data.")));
        else if (o.Method != Method.Dense && report.PrunedBytes == report.DenseBytes && chosen.All(p => p.SlowerThanDense is null))
            report.Warnings.Add(new(ReportWarning.NothingPruned, "the accuracy budget allowed no pruning: the generated code is the dense model. A larger budget, more calibration data or retraining may help."));
        if (o.MeasureOnHost && LayerTimer.Accelerated(o.Target.CodeTarget))
        {
            say.Report("timing each layer's generated kernel on this machine");
            foreach (var (name, time) in LayerTimer.Measure(original, model, o.Target.CodeTarget, o.Cancellation))
                if (report.Layers.FirstOrDefault(l => l.Name == name) is { } layer)
                    (layer.MeasuredMicroseconds, layer.MeasuredDenseMicroseconds) = (time.Pruned, time.Dense);
        }
        long peak = Process.GetCurrentProcess().PeakWorkingSet64;
        if (o.MeasureOnHost) report.PeakMemoryBytes = peak;
        say.Report(string.Create(CultureInfo.InvariantCulture, $"done: {report.SizeReduction:P1} smaller")
            + (after is null ? ", accuracy not checked" : string.Create(CultureInfo.InvariantCulture, $", validation {report.AccuracyMetric} {before:P2} -> {after:P2} ({100 * (after - before):+0.00;-0.00} points)"))
            + string.Create(CultureInfo.InvariantCulture, $"; FC and conv layers {report.PredictedSpeedup:0.00}x faster predicted")
            + (report.MeasuredSpeedup is { } measured ? string.Create(CultureInfo.InvariantCulture, $", {measured:0.00}x measured here") : ", not measured")
            + string.Create(CultureInfo.InvariantCulture, $"; peak memory {peak / (1024.0 * 1024):0} MB"));
    }
}
