using System.Globalization;
using Scalpel.Onnx;
using Scalpel.Pruning.Methods;
using Scalpel.Pruning.Targets;

namespace Scalpel.Pruning;

/// <summary>What to prune: overrides which technique the target's parallelism would pick.</summary>
public enum Method
{
    /// <summary>Scalpel: the technique the target's parallelism calls for, per layer kind (docs/pruning.md, "What it does").</summary>
    Scalpel,
    /// <summary>The paper's baseline: unstructured magnitude-style pruning stored as CSR.</summary>
    Traditional,
    /// <summary>No pruning: the dense model (for comparisons).</summary>
    Dense,
}

/// <summary>A technique chosen for a layer instead of the one the target's parallelism calls for.</summary>
public enum Technique
{
    /// <summary>SIMD-aware weight pruning, grouped CSR.</summary>
    Weight,
    /// <summary>Unstructured weight pruning, CSR.</summary>
    Csr,
    /// <summary>Node pruning: whole neurons or channels.</summary>
    Node,
}

/// <summary>A per-layer override: by layer name (the ONNX node name) or by kind ("fc", "conv").</summary>
public sealed record LayerOverride(bool? KeepDense = null, double? Sparsity = null, Technique? Technique = null);

/// <summary>How retraining picks the channels (nodes) a node step removes.</summary>
public enum NodeSelection
{
    /// <summary>Smallest producer filters (L2 norm) of the retrained weights first.</summary>
    Filter,
    /// <summary>The paper's learned gates: one gate per node trained with an L1 penalty, then folded into the filters; nodes whose gate fell below a threshold go first.</summary>
    Gates,
}

/// <summary>How retraining runs when training data is given (docs/pruning.md, "Retraining"; the paper's prune-retrain schedule).</summary>
public sealed record RetrainOptions
{
    /// <summary>Epochs of fine-tuning after the first prune, and after each further step.</summary>
    public int EpochsPerStep { get; init; } = (int)OptionSpecs.Epochs.DefaultNumber;
    /// <summary>Steps of rising sparsity at most (each raises every weight-pruned layer by one level, then retrains).</summary>
    public int MaxSteps { get; init; } = (int)OptionSpecs.RetrainSteps.DefaultNumber;
    public int BatchSize { get; init; } = 64;
    public Training.OptimizerKind Optimizer { get; init; } = Training.OptimizerKind.Adam;
    public float LearningRate { get; init; } = (float)OptionSpecs.LearningRate.DefaultNumber;
    /// <summary>Weight of distillation from the original model's logits, 0 to 1.</summary>
    public float Distillation { get; init; } = (float)OptionSpecs.Distillation.DefaultNumber;
    public int Seed { get; init; } = 1;
    public NodeSelection NodeSelection { get; init; } = NodeSelection.Filter;
    /// <summary>With gates: the L1 penalty's weight.</summary>
    public float GatePenalty { get; init; } = (float)OptionSpecs.GatePenalty.DefaultNumber;
    /// <summary>Training samples used at most per epoch (the first ones).</summary>
    public int MaxSamples { get; init; } = int.MaxValue;
    /// <summary>
    /// Score validation before retraining a step (rejecting it untrained when <see cref="HopelessPoints"/> below the
    /// budget) and after each epoch but the last, and stop the step there once the guard's lower bound clears the
    /// budget by <see cref="ClearPoints"/>, the score rose less than <see cref="PlateauPoints"/> over the epoch, or it
    /// is more than <see cref="GiveUpPoints"/> below the budget (Training.EarlyStopping).
    /// </summary>
    public bool EarlyStop { get; init; } = true;
    /// <summary>Early stop: a step this many points below the budget before retraining is rejected without retraining.</summary>
    public double HopelessPoints { get; init; } = 30;
    /// <summary>Early stop: the guard's one-sided lower bound this many points above the budget accepts the step at once.</summary>
    public double ClearPoints { get; init; } = 0.5;
    /// <summary>Early stop: a rise of less than this many accuracy points over an epoch counts as settled.</summary>
    public double PlateauPoints { get; init; } = 0.1;
    /// <summary>Early stop: this many points below the budget after an epoch rejects the step without its last epochs.</summary>
    public double GiveUpPoints { get; init; } = 2;
}

public sealed record PruneOptions
{
    public required string ModelPath { get; init; }
    public required TargetProfile Target { get; init; }
    public required string Namespace { get; init; }
    public required string ClassName { get; init; }
    public Method Method { get; init; } = Method.Scalpel;
    public string? CalibrationData { get; init; }
    public string? ValidationData { get; init; }
    public string? ValidationLabels { get; init; }
    /// <summary>Training inputs and labels: with them, pruning alternates with masked fine-tuning (retraining).</summary>
    public string? TrainingData { get; init; }
    public string? TrainingLabels { get; init; }
    public RetrainOptions Retraining { get; init; } = new();
    /// <summary>Largest accepted top-1 accuracy drop on the validation set, in percentage points.</summary>
    public double MaxAccuracyDrop { get; init; } = OptionSpecs.MaxAccuracyDrop.DefaultNumber;
    /// <summary>Without labels: smallest accepted top-1 agreement with the original model.</summary>
    public double MinAgreement { get; init; } = OptionSpecs.MinAgreement.DefaultNumber;
    /// <summary>Group scoring; null picks the default (data-aware with calibration data, magnitude without).</summary>
    public Criterion? Criterion { get; init; }
    /// <summary>Calibration samples used at most (the least-squares statistics cost grows with them).</summary>
    public int MaxCalibrationSamples { get; init; } = 2048;
    public IReadOnlyDictionary<string, LayerOverride> Overrides { get; init; } = new Dictionary<string, LayerOverride>();
    /// <summary>Time each layer's generated kernel on this machine for the report (when the target's vectors run in hardware here).</summary>
    public bool MeasureOnHost { get; init; }
    /// <summary>Where conv kernel timings are kept between runs (with <see cref="MeasureOnHost"/> and the host target); null keeps none.</summary>
    public string? KernelCachePath { get; init; } = Profiling.KernelTimingCache.DefaultPath;
    public IProgress<string>? Progress { get; init; }
    public CancellationToken Cancellation { get; init; }
    /// <summary>Limit on the bytes all of the model's tensors may declare (hostile files can claim gigabytes).</summary>
    public long MaxModelBytes { get; init; } = OnnxModel.DefaultMaxTensorBytes;

    /// <summary>
    /// Checks every option value before any work, for the command line and the MSBuild item alike (the item runs
    /// the command line, and checks its metadata with the same OptionSpecs first): NaN and out-of-range numbers,
    /// and options that only make sense with another one.
    /// </summary>
    public void Validate()
    {
        static ScalpelException Bad(string message) => new(ErrorCode.Option, message);
        static void Check(OptionSpec option, double value)
        {
            if (option.Check(value) is { } message) throw Bad(message);
        }
        Check(OptionSpecs.MaxAccuracyDrop, MaxAccuracyDrop);
        Check(OptionSpecs.MinAgreement, MinAgreement);
        if (OptionSpecs.CheckDataFiles(ValidationData is not null, ValidationLabels is not null, TrainingData is not null, TrainingLabels is not null, o => o.Option!) is { } files)
            throw new ScalpelException(files.Code, files.Message);
        if (MaxCalibrationSamples < 1) throw Bad($"at most {MaxCalibrationSamples} calibration samples: expected 1 or more.");
        Check(OptionSpecs.MaxModelBytes, MaxModelBytes);
        foreach (var (name, o) in Overrides)
        {
            if (name.Length == 0) throw Bad("a per-layer option names no layer; expected NAME=VALUE with a layer name, 'fc' or 'conv'.");
            if (o.Sparsity is { } s && OptionSpecs.Sparsity.Parse(name + "=" + s.ToString("R", CultureInfo.InvariantCulture), null, out _) is { } message) throw Bad(message);
        }
        var r = Retraining;
        Check(OptionSpecs.Epochs, r.EpochsPerStep);
        Check(OptionSpecs.RetrainSteps, r.MaxSteps);
        if (r.BatchSize < 1 || r.MaxSamples < 1) throw Bad("retraining batch size and sample count must be positive.");
        Check(OptionSpecs.LearningRate, r.LearningRate);
        Check(OptionSpecs.Distillation, r.Distillation);
        Check(OptionSpecs.GatePenalty, r.GatePenalty);
        if (new[] { r.PlateauPoints, r.GiveUpPoints, r.ClearPoints, r.HopelessPoints }.Any(v => !double.IsFinite(v) || v < 0))
            throw Bad($"early-stop margins are {r.PlateauPoints}, {r.GiveUpPoints}, {r.ClearPoints} and {r.HopelessPoints} points; expected 0 or more.");
    }

    /// <summary>Per-layer options must name a layer the model has (weights: Dense or Conv), or a kind: a typo would be silently ignored.</summary>
    public void ValidateLayerNames(IReadOnlyCollection<string> layers)
    {
        foreach (var name in Overrides.Keys)
            if (name is not ("fc" or "conv") && !layers.Contains(name))
                throw new ScalpelException(ErrorCode.Option,
                    $"{ModelPath}: per-layer option for '{name}', which is no Dense or Conv layer of the model; use 'fc', 'conv' or one of: {string.Join(", ", layers.Take(20))}{(layers.Count > 20 ? ", ..." : "")} (see `dotnet scalpel inspect`).");
    }
}
