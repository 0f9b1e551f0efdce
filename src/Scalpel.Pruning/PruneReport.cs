using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Scalpel.CodeGen;
using Scalpel.Onnx;

namespace Scalpel.Pruning;

/// <summary>Something the user should know about a run that succeeded; Code is its SCALPEL2xxx number (<see cref="WarningCode"/>).</summary>
public sealed record ReportWarning(int Code, string Message)
{
    public const int NoData = (int)WarningCode.NoData;

    public const int NothingPruned = (int)WarningCode.NothingPruned;

    public const int FixedSparsityOverBudget = (int)WarningCode.FixedSparsityOverBudget;

    /// <summary>The validation set cannot show with 95% confidence that the budget holds for the delta measured.</summary>
    public const int ValidationTooSmall = (int)WarningCode.ValidationTooSmall;
}

/// <summary>An interval of the accuracy delta (after - before), as fractions.</summary>
public sealed record DeltaInterval(double Lower, double Upper);

public sealed record LayerReport
{
    public required string Name { get; init; }
    public required string Kind { get; init; }
    public required string Technique { get; init; }
    public required string Format { get; init; }
    public required double KeptFraction { get; init; }
    public required long DenseBytes { get; init; }
    public required long Bytes { get; init; }
    public required long ValueBytes { get; init; }
    public required long IndexBytes { get; init; }
    public required long RowPointerBytes { get; init; }
    public required long Macs { get; init; }
    /// <summary>Predicted time relative to this layer's dense kernel (1 = as slow as dense), from the target's crossover.</summary>
    public required double PredictedRelativeTime { get; init; }
    /// <summary>Measured on the machine that ran the pipeline: batch-1 µs of this layer's generated kernel, and of the original dense layer's.</summary>
    public double? MeasuredMicroseconds { get; set; }
    public double? MeasuredDenseMicroseconds { get; set; }
    public string? Note { get; init; }
}

public sealed record PruneReport
{
    public required string Model { get; init; }
    public required string Target { get; init; }
    public required string Method { get; init; }
    public required string Criterion { get; init; }
    public required string Reconstruction { get; init; }
    /// <summary>What retraining ran, or null without training data.</summary>
    public string? Retraining { get; init; }
    public required List<LayerReport> Layers { get; init; }
    public required long DenseBytes { get; init; }
    public required long PrunedBytes { get; init; }
    public double SizeReduction => DenseBytes == 0 ? 0 : 1 - (double)PrunedBytes / DenseBytes;
    /// <summary>Original over predicted time of the FC and conv layers together (MAC-weighted, from the target's crossovers).</summary>
    public double PredictedSpeedup { get; init; } = 1;
    /// <summary>Original dense over pruned time of the FC and conv layers' generated kernels, summed, as measured on the machine that ran the pipeline; null when not measured.</summary>
    public double? MeasuredSpeedup => Layers.Count > 0 && Layers.All(l => l.MeasuredMicroseconds is > 0 && l.MeasuredDenseMicroseconds is not null)
        ? Layers.Sum(l => l.MeasuredDenseMicroseconds!.Value) / Layers.Sum(l => l.MeasuredMicroseconds!.Value) : null;
    /// <summary>"accuracy" (with labels), "agreement" (without), or "none" (no validation data: not checked).</summary>
    public required string AccuracyMetric { get; init; }
    public double? AccuracyBefore { get; init; }
    public double? AccuracyAfter { get; init; }
    /// <summary>The 95% interval of the paired accuracy delta (after - before, as a fraction), from the samples the two models disagree on.</summary>
    public DeltaInterval? AccuracyDeltaInterval { get; set; }
    public double? MaxAccuracyDrop { get; init; }
    /// <summary>Without labels: the smallest accepted top-1 agreement with the original model.</summary>
    public double? MinAgreement { get; init; }
    /// <summary>Peak memory (resident set) of the process that ran the pipeline, when measuring on the host (it differs from run to run).</summary>
    public long? PeakMemoryBytes { get; set; }
    public int ValidationSamples { get; init; }
    public int CalibrationSamples { get; init; }
    public List<string> Search { get; init; } = [];
    /// <summary>The kernel the generated code runs for each FC and conv layer, and why (the code generator's choice for the target).</summary>
    public List<KernelChoice> Kernels { get; init; } = [];
    public List<ReportWarning> Warnings { get; init; } = [];

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>The report's first paragraph, in plain words: how much smaller, how much faster, how accurate.</summary>
    public string Summary()
    {
        var inv = CultureInfo.InvariantCulture;
        var speed = string.Format(inv, "its fully connected and convolution layers should run {0:0.00}x as fast as the unpruned generated code (predicted from the target's profile", PredictedSpeedup)
            + (MeasuredSpeedup is { } m ? string.Format(inv, "; {0:0.00}x measured on the machine that pruned it)", m) : "; not measured)");
        var accuracy = AccuracyMetric switch
        {
            "accuracy" => string.Format(inv, "its accuracy on {0} validation samples went from {1:P2} to {2:P2} (at most {3} points lower was allowed)", ValidationSamples, AccuracyBefore, AccuracyAfter, MaxAccuracyDrop),
            "agreement" => string.Format(inv, "it makes the same top-1 prediction as the original on {0:P2} of {1} validation samples (at least {2:P2} was required; without labels, accuracy itself was not measured)", AccuracyAfter, ValidationSamples, MinAgreement),
            _ => "its accuracy was **not checked** (no validation data)",
        };
        var size = SizeReduction >= 0
            ? string.Format(inv, "{0:P1} smaller ({1:N0} bytes of weights against {2:N0})", SizeReduction, PrunedBytes, DenseBytes)
            : string.Format(inv, "{0:P1} larger ({1:N0} bytes of weights against {2:N0}: the sparse indices cost more than the weights removed)", -SizeReduction, PrunedBytes, DenseBytes);
        return string.Format(inv, "**In short:** {0} was pruned for `{1}`. The model is {2}, {3}, and {4}. The details are below.", Model, Target, size, speed, accuracy);
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json) + "\n";

    public string ToMarkdown()
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(inv, $"# Scalpel pruning report: {Model}");
        sb.AppendLine();
        sb.AppendLine(Summary());
        sb.AppendLine();
        foreach (var w in Warnings) sb.AppendLine(inv, $"> **Warning {Diagnostic.Id(w.Code)}**: {w.Message}").AppendLine();
        var slower = Layers.Where(l => l.Format != "dense" && l.MeasuredMicroseconds > l.MeasuredDenseMicroseconds).ToList();
        if (slower.Count > 0)
        {
            sb.AppendLine("> **Note**: measured on the machine that pruned, " + string.Join("; ", slower.Select(l => string.Format(inv, "{0} ({1}) took {2:0.00} µs against {3:0.00} µs dense", l.Name, l.Format, l.MeasuredMicroseconds, l.MeasuredDenseMicroseconds)))
                + string.Format(inv, ". The target's crossover predicted the sparse format to win there; on this machine it did not. If this machine is the target, `KeepDense` (`--keep-dense`) keeps {0} dense, or profile this machine (`dotnet scalpel profile`) and prune for that profile.", slower.Count == 1 ? "it" : "them"));
            sb.AppendLine();
        }
        sb.AppendLine("## Details");
        sb.AppendLine();
        sb.AppendLine(inv, $"Target `{Target}`, method {Method}; criterion: {Criterion}; reconstruction: {Reconstruction}{(Retraining is null ? "" : "; retraining: " + Retraining)}.");
        sb.AppendLine();
        sb.AppendLine("| layer | kind | technique | format | kept | bytes (values + indices + row ptrs) | dense bytes | MACs kept | predicted time vs dense | measured here: µs (dense µs) | note |");
        sb.AppendLine("|---|---|---|---|---:|---:|---:|---:|---:|---:|---|");
        foreach (var l in Layers)
        {
            var measured = l.MeasuredMicroseconds is { } m ? string.Format(inv, "{0:0.00} ({1:0.00})", m, l.MeasuredDenseMicroseconds) : "not measured";
            sb.AppendLine(inv, $"| {l.Name} | {l.Kind} | {l.Technique} | {l.Format} | {l.KeptFraction:P1} | {l.Bytes:N0} ({l.ValueBytes:N0} + {l.IndexBytes:N0} + {l.RowPointerBytes:N0}) | {l.DenseBytes:N0} | {l.Macs:N0} | {l.PredictedRelativeTime:F2}x | {measured} | {l.Note} |");
        }
        sb.AppendLine();
        if (Kernels.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("| layer | generated kernel | why |");
            sb.AppendLine("|---|---|---|");
            foreach (var k in Kernels) sb.AppendLine(inv, $"| {k.Layer} | {k.Kernel} | {k.Why} |");
        }
        sb.AppendLine();
        sb.AppendLine(inv, $"Model size: {PrunedBytes:N0} bytes against {DenseBytes:N0} dense fp32 ({SizeReduction:P1} smaller).");
        sb.AppendLine();
        sb.AppendLine(AccuracyMetric switch
        {
            "none" => "Accuracy was **not checked**: no validation data was given.",
            "agreement" => string.Format(inv, "Validation agreement (top-1 agreement with the original model; no labels were given, so accuracy was not measured) on {0} samples: {1:P2} before, {2:P2} after (budget: at least {3:P2}).",
                ValidationSamples, AccuracyBefore, AccuracyAfter, MinAgreement),
            _ => string.Format(inv, "Validation {0} on {1} samples: {2:P2} before, {3:P2} after ({4:+0.00;-0.00} points{5}; budget {6} points).",
                AccuracyMetric, ValidationSamples, AccuracyBefore, AccuracyAfter, 100 * (AccuracyAfter - AccuracyBefore),
                AccuracyDeltaInterval is { } ci ? string.Format(inv, ", 95% interval {0:+0.00;-0.00} to {1:+0.00;-0.00}", 100 * ci.Lower, 100 * ci.Upper) : "", MaxAccuracyDrop),
        });
        sb.AppendLine(inv, $"Calibration samples: {CalibrationSamples}.");
        if (PeakMemoryBytes is { } peak) sb.AppendLine(inv, $"Peak memory of the pruning process: {peak / (1024.0 * 1024):0} MB.");
        if (Search.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("Search steps:");
            sb.AppendLine();
            foreach (var s in Search) sb.AppendLine("- " + s);
        }
        return sb.ToString();
    }
}
