using System.Diagnostics;
using System.Globalization;
using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;
using Scalpel.Pruning.Calibration;
using Scalpel.Pruning.Loading;
using Scalpel.Pruning.Methods;
using Scalpel.Pruning.Planning;
using Scalpel.Pruning.Profiling;
using Scalpel.Pruning.Reporting;
using Scalpel.Pruning.Retraining;
using Scalpel.Pruning.Search;

namespace Scalpel.Pruning;

public sealed record PruneResult(ModelGraph Model, GeneratedModel Code, ModelProto PrunedOnnx, PruneReport Report);

/// <summary>
/// The one pipeline behind the CLI and the MSBuild task: load -> node-prune -> plan -> calibrate -> weight-prune
/// (greedy search within the accuracy budget) -> refit / retrain -> verify kernels -> emit -> report.
/// docs/architecture.md describes each stage and the data between them.
/// </summary>
public static class Pipeline
{
    public static PruneResult Run(PruneOptions o)
    {
        try
        {
            return RunChecked(o);
        }
        catch (Microsoft.ML.OnnxRuntime.OnnxRuntimeException e)
        {
            // A model that passed Scalpel.Build's own checks can still be one ONNX Runtime refuses to load or run.
            throw new ScalpelException(ErrorCode.InvalidModel, $"{o.ModelPath}: ONNX Runtime cannot run the model: {e.Message.ReplaceLineEndings(" ")}", e);
        }
    }

    private static PruneResult RunChecked(PruneOptions o)
    {
        o.Validate();
        var say = o.Progress ?? new Progress<string>(_ => { });
        var (original, originalModel, calibration, validation, training) = RunInputs.Load(o);
        var criterion = o.Criterion ?? (calibration is null ? Criterion.Magnitude : Criterion.DataAware);
        var (budget, before) = BudgetOf(original.Proto, validation, o, say);
        var log = new List<string>();

        // Node pruning first (it changes layer sizes); weight pruning then works on the smaller model with what is left of the budget.
        var nodes = NodeSearch.Run(original, originalModel, o, calibration, budget, log, say);
        var retrainer = training is null ? null : new Retrainer(original.Proto, training, budget!, o, log, say);
        if (retrainer is not null) nodes = retrainer.Nodes(nodes, original);
        var baseline = nodes.Kept.Count == 0 ? PruneState.Of(originalModel, original.Proto)
            : PruneState.Of(GraphAnalyzer.Analyze(new OnnxModel(nodes.Model, original.BaseDirectory, original.Source)), nodes.Model);

        var plans = Planner.WeightPlans(baseline.Baseline, baseline.BaselineOnnx, o);
        say.Report($"{Path.GetFileName(o.ModelPath)}: {baseline.Baseline.Layers.Count} layers, {nodes.Kept.Count} node-pruned, {plans.Count(p => p.Candidates.Length > 0)} to weight-prune for target {o.Target.Name}");
        var weights = new WeightSearch(baseline, plans, criterion, o, log, say);
        if (calibration is not null) weights.Calibrate(calibration);
        var warnings = new List<ReportWarning>();
        if (budget is null) weights.DataFree();
        else
        {
            weights.ApplyFixed(budget, warnings);
            weights.Run(budget);
        }

        // The exported model's validation result, scored by ONNX Runtime against the original's predictions.
        var state = weights.At();
        var result = budget?.Paired(state.Onnx());
        if (calibration is not null && budget is not null && weights.SequentialRefit(calibration, budget, result!.PrunedAccuracy) is { } refit)
            (state, result) = refit;
        if (retrainer is not null)
        {
            state = retrainer.Weights(state, plans);
            result = budget!.Paired(state.Onnx());
        }
        double? after = result?.PrunedAccuracy;
        var chosen = plans.Where(p => p.Level >= 0).ToList();
        if (o.MeasureOnHost && LayerTimer.Accelerated(o.Target.CodeTarget) && chosen.Count > 0)
            state = FasterKernels.Keep(state, chosen, o, say);

        var model = state.Model();
        // On the machine the code is for, conv kernels are timed rather than modelled.
        var measured = o.MeasureOnHost && o.Target.Name == "host" && LayerTimer.Accelerated(o.Target.CodeTarget)
            ? MeasuredConvKernels.Choose(model, o.Target.CodeTarget, new KernelTimingCache(o.KernelCachePath), say, o.Cancellation)
            : [];
        var code = CSharpEmitter.Emit(model, new EmitOptions(o.Namespace, o.ClassName, o.Target.CodeTarget, Path.GetFileName(o.ModelPath)) { MeasuredKernels = measured });
        var report = ReportBuilder.Build(o, originalModel, model, plans, nodes.Kept, criterion, calibration, validation, before, after, log)
            with { Retraining = retrainer?.Summary(), Kernels = code.Kernels.ToList() };
        var onnx = state.Onnx();
        if (result is not null && validation!.Labels is not null
            && (ReportBuilder.Interval(report, result, o.MaxAccuracyDrop) ?? ReportBuilder.Refused(budget!.Unresolved, budget.Confidence, o.MaxAccuracyDrop)) is { } unresolved)
            warnings.Add(unresolved);
        ReportBuilder.Finish(report, o, originalModel, model, chosen, criterion, calibration, validation, before, after, warnings, say);
        return new PruneResult(model, code, onnx, report);
    }

    /// <summary>
    /// The accuracy guard from the validation set: the original model's accuracy (or its own top-1, which agreement
    /// is measured against) and the floor the budget leaves. Null without validation data.
    /// </summary>
    private static (Budget?, double?) BudgetOf(ModelProto original, Data.Dataset? validation, PruneOptions o, IProgress<string> say)
    {
        if (validation is null) return (null, null);
        var top1 = Accuracy.Top1(Accuracy.Logits(original, validation), validation.Count);
        var truth = validation.Labels ?? top1;
        double before = Accuracy.Score(top1, truth);
        say.Report($"validation: {validation.Count} samples, original {(validation.Labels is null ? "agreement" : "accuracy")} {before:P2}");
        double floor = validation.Labels is not null ? before - o.MaxAccuracyDrop / 100 : o.MinAgreement;
        return (new Budget(validation, truth, floor, top1), before);
    }

    /// <summary>
    /// Writes C.bin, C.onnx, C.report.json, C.report.md and C.g.cs all or none (see ModelCompiler.WriteAll). C.g.cs comes
    /// last because builds treat it as the run's output: if a kill lands between renames, it is still old.
    /// </summary>
    public static IReadOnlyList<string> Write(PruneResult result, string outDir, string className, CancellationToken cancellation = default)
    {
        var pruned = new MemoryStream();
        new OnnxModel(result.PrunedOnnx, null, className + ".onnx").Save(pruned);
        var files = new (string Path, byte[] Bytes)[]
        {
            (Path.Combine(outDir, className + ".bin"), result.Code.Weights),
            (Path.Combine(outDir, className + ".onnx"), pruned.ToArray()),
            (Path.Combine(outDir, className + ".report.json"), System.Text.Encoding.UTF8.GetBytes(result.Report.ToJson())),
            (Path.Combine(outDir, className + ".report.md"), System.Text.Encoding.UTF8.GetBytes(result.Report.ToMarkdown())),
            (Path.Combine(outDir, className + ".g.cs"), System.Text.Encoding.UTF8.GetBytes(result.Code.Source)),
        };
        ModelCompiler.WriteAll(outDir, files, cancellation);
        return files.Select(f => f.Path).ToList();
    }
}
