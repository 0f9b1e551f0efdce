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
    public int EpochsPerStep { get; init; } = 3;
    /// <summary>Steps of rising sparsity at most (each raises every weight-pruned layer by one level, then retrains).</summary>
    public int MaxSteps { get; init; } = 8;
    public int BatchSize { get; init; } = 64;
    public Training.OptimizerKind Optimizer { get; init; } = Training.OptimizerKind.Adam;
    public float LearningRate { get; init; } = 1e-3f;
    /// <summary>Weight of distillation from the original model's logits, 0 to 1.</summary>
    public float Distillation { get; init; } = 0.5f;
    public int Seed { get; init; } = 1;
    public NodeSelection NodeSelection { get; init; } = NodeSelection.Filter;
    /// <summary>With gates: the L1 penalty's weight.</summary>
    public float GatePenalty { get; init; } = 0.02f;
    /// <summary>Training samples used at most per epoch (the first ones).</summary>
    public int MaxSamples { get; init; } = int.MaxValue;
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
    public double MaxAccuracyDrop { get; init; } = 0.5;
    /// <summary>Without labels: smallest accepted top-1 agreement with the original model.</summary>
    public double MinAgreement { get; init; } = 0.99;
    /// <summary>Group scoring; null picks the default (data-aware with calibration data, magnitude without).</summary>
    public Criterion? Criterion { get; init; }
    /// <summary>Calibration samples used at most (the least-squares statistics cost grows with them).</summary>
    public int MaxCalibrationSamples { get; init; } = 2048;
    public IReadOnlyDictionary<string, LayerOverride> Overrides { get; init; } = new Dictionary<string, LayerOverride>();
    /// <summary>Time each layer's generated kernel on this machine for the report (when the target's vectors run in hardware here).</summary>
    public bool MeasureOnHost { get; init; }
    public IProgress<string>? Progress { get; init; }
    public CancellationToken Cancellation { get; init; }
    /// <summary>Limit on the bytes all of the model's tensors may declare (hostile files can claim gigabytes).</summary>
    public long MaxModelBytes { get; init; } = OnnxModel.DefaultMaxTensorBytes;

    /// <summary>
    /// Checks every option value before any work, for the command line and the MSBuild item alike (the item runs
    /// the command line): NaN and out-of-range numbers, and options that only make sense with another one.
    /// </summary>
    public void Validate()
    {
        static ScalpelException Bad(string message) => new(ErrorCode.Option, message);
        if (!double.IsFinite(MaxAccuracyDrop) || MaxAccuracyDrop is < 0 or > 100)
            throw Bad($"--max-accuracy-drop is {MaxAccuracyDrop}; expected percentage points from 0 to 100.");
        if (!double.IsFinite(MinAgreement) || MinAgreement is < 0 or > 1)
            throw Bad($"--min-agreement is {MinAgreement}; expected a fraction from 0 to 1.");
        if (ValidationLabels is not null && ValidationData is null)
            throw Bad($"--labels {ValidationLabels} is given without --validation: labels belong to validation inputs.");
        if (TrainingLabels is not null && TrainingData is null)
            throw Bad($"--train-labels {TrainingLabels} is given without --train.");
        if (TrainingData is not null && TrainingLabels is null) // a data problem, as a labels file missing from a pair is (SCALPEL1005)
            throw new ScalpelException(ErrorCode.Data, $"{TrainingData}: training data needs its labels (--train-labels).");
        if (MaxCalibrationSamples < 1) throw Bad($"at most {MaxCalibrationSamples} calibration samples: expected 1 or more.");
        if (MaxModelBytes < 1) throw Bad($"--max-model-bytes is {MaxModelBytes}; expected a positive number of bytes.");
        foreach (var (name, o) in Overrides)
        {
            if (name.Length == 0) throw Bad("a per-layer option names no layer; expected NAME=VALUE with a layer name, 'fc' or 'conv'.");
            if (o.Sparsity is { } s && (!double.IsFinite(s) || s is < 0 or >= 1))
                throw Bad($"--sparsity {name}={s}: expected a fraction in [0, 1).");
        }
        var r = Retraining;
        if (r.EpochsPerStep < 1) throw Bad($"--epochs is {r.EpochsPerStep}; expected a positive number.");
        if (r.MaxSteps < 0) throw Bad($"--retrain-steps is {r.MaxSteps}; expected 0 or more.");
        if (r.BatchSize < 1 || r.MaxSamples < 1) throw Bad("retraining batch size and sample count must be positive.");
        if (!float.IsFinite(r.LearningRate) || r.LearningRate is <= 0 or >= 1) throw Bad($"--learning-rate is {r.LearningRate}; expected a value in (0, 1).");
        if (!float.IsFinite(r.Distillation) || r.Distillation is < 0 or > 1) throw Bad($"--distillation is {r.Distillation}; expected a value from 0 to 1.");
        if (!float.IsFinite(r.GatePenalty) || r.GatePenalty < 0) throw Bad($"--gate-penalty is {r.GatePenalty}; expected a value of 0 or more.");
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
