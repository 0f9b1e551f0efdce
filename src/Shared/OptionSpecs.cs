using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Scalpel.Onnx;

namespace Scalpel;

// The options of `dotnet scalpel prune` (and those `compile` shares), described once: the command line builds its
// options and help from this, PruneOptions.Validate checks values with it, and the MSBuild task checks a
// ScalpelModel item's metadata with it before the tool starts, so both fronts take the same values and say
// the same thing about a bad one. Compiled into Scalpel.Pruning and into the task assembly (netstandard2.0,
// which cannot reference the pipeline); public in both, as the task assembly's public types are MSBuild's
// business only. docs/msbuild.md and docs/pruning.md list these options; tests check they agree.

/// <summary>What an option's value is: decides how its text is parsed and checked.</summary>
public enum OptionKind
{
    /// <summary>Text the front checks itself (a target, a class or namespace name, a folder).</summary>
    Text,
    /// <summary>A data file's path: relative to the project folder in a build.</summary>
    File,
    Number,
    WholeNumber,
    /// <summary>One of <see cref="OptionSpec.Choices"/>, any case.</summary>
    Choice,
    Boolean,
    /// <summary>Layer names or kinds, separated by ';' or ',' (or the option repeated).</summary>
    Names,
    /// <summary>NAME=VALUE entries, separated by ';' or ',', VALUE as <see cref="OptionSpec.Value"/> says.</summary>
    NamedValues,
}

/// <summary>One option: its command-line name, its ScalpelModel metadata name, its value, default and help.</summary>
public sealed class OptionSpec
{
    public OptionSpec(string? option, string? metadata, OptionKind kind, string help, string? defaultValue = null, string? buildDefault = null,
        double min = double.NegativeInfinity, double max = double.PositiveInfinity, bool maxExclusive = false, bool minExclusive = false,
        string[]? choices = null, string? unit = null, OptionSpec? value = null, string? valueName = null)
    {
        Option = option;
        Metadata = metadata;
        Kind = kind;
        Help = help;
        Default = defaultValue;
        BuildDefault = buildDefault ?? defaultValue;
        Min = min;
        Max = max;
        MinExclusive = minExclusive;
        MaxExclusive = maxExclusive;
        Choices = choices ?? [];
        Unit = unit;
        Value = value;
        ValueName = valueName;
    }

    /// <summary>The command-line option ("--max-accuracy-drop"); null for a build-only metadata.</summary>
    public string? Option { get; }

    /// <summary>The ScalpelModel metadata that gives it in a build ("MaxAccuracyDrop"); null when a build cannot set it.</summary>
    public string? Metadata { get; }

    public OptionKind Kind { get; }

    /// <summary>The command line's help text.</summary>
    public string Help { get; }

    /// <summary>The command line's default, as typed; null when there is none or it is worked out (say from the model's file name).</summary>
    public string? Default { get; }

    /// <summary>The default in a build, when the item does not set the metadata (<see cref="Default"/> unless a build differs).</summary>
    public string? BuildDefault { get; }

    public double Min { get; }
    public double Max { get; }
    public bool MinExclusive { get; }
    public bool MaxExclusive { get; }

    /// <summary>The values a choice takes, spelled as they are typed.</summary>
    public IReadOnlyList<string> Choices { get; }

    /// <summary>What a number counts ("percentage points"), for messages.</summary>
    public string? Unit { get; }

    /// <summary>With <see cref="OptionKind.NamedValues"/>: what VALUE is.</summary>
    public OptionSpec? Value { get; }

    /// <summary>With <see cref="OptionKind.NamedValues"/>: VALUE's name in messages ("FRACTION").</summary>
    public string? ValueName { get; }

    public double DefaultNumber => double.Parse(Default!, CultureInfo.InvariantCulture);

    /// <summary>What a good value is, for messages: "a number from 0 to 100 (percentage points)".</summary>
    public string Expected => Kind switch
    {
        OptionKind.Number or OptionKind.WholeNumber => (Kind == OptionKind.Number ? "a number" : "a whole number") + Range() + (Unit is null ? "" : $" ({Unit})"),
        OptionKind.Choice => "one of: " + string.Join(", ", Choices),
        OptionKind.Boolean => "true or false",
        OptionKind.Names => "layer names or kinds (fc, conv)",
        OptionKind.NamedValues when Value!.Kind == OptionKind.Choice => Or(Value.Choices.Select(c => "NAME=" + c).ToList()),
        OptionKind.NamedValues => $"NAME={ValueName} with {ValueName}{Value!.Range()}",
        _ => "a value",
    };

    private string Range()
    {
        string F(double x) => x.ToString(CultureInfo.InvariantCulture);
        bool low = !double.IsNegativeInfinity(Min), high = !double.IsPositiveInfinity(Max);
        if (low && high && !MinExclusive && !MaxExclusive) return $" from {F(Min)} to {F(Max)}";
        if (low && high) return $" in {(MinExclusive ? '(' : '[')}{F(Min)}, {F(Max)}{(MaxExclusive ? ')' : ']')}";
        if (low) return MinExclusive ? $" above {F(Min)}" : $" of {F(Min)} or more";
        return high ? (MaxExclusive ? $" below {F(Max)}" : $" of {F(Max)} or less") : "";
    }

    private static string Or(IReadOnlyList<string> items) =>
        items.Count < 2 ? string.Join("", items) : string.Join(", ", items.Take(items.Count - 1)) + " or " + items[items.Count - 1];

    /// <summary>Null when a number is good, else the message (naming the option as <paramref name="name"/>, by default the command line's).</summary>
    public string? Check(double value, string? name = null)
    {
        bool whole = Kind == OptionKind.WholeNumber;
        bool good = !double.IsNaN(value) && !double.IsInfinity(value) && (!whole || value == Math.Floor(value))
            && (MinExclusive ? value > Min : value >= Min) && (MaxExclusive ? value < Max : value <= Max);
        return good ? null : Problem(value.ToString("R", CultureInfo.InvariantCulture), name);
    }

    /// <summary>The message for a bad value, as typed.</summary>
    public string Problem(string text, string? name = null) => $"{name ?? Option} is {text}; expected {Expected}.";

    /// <summary>
    /// Parses and checks one value as typed (a metadata value, or a command-line token): null and the value as the
    /// command line takes it (a number in invariant form, a choice as spelled in <see cref="Choices"/>), or the
    /// message. <paramref name="range"/> false only parses a number (the command line checks ranges in PruneOptions.Validate).
    /// </summary>
    public string? Parse(string text, string? name, out string value, bool range = true)
    {
        name ??= Option;
        value = text;
        switch (Kind)
        {
            case OptionKind.Number when double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var x):
                value = x.ToString("R", CultureInfo.InvariantCulture);
                return range ? Check(x, name) : null;
            case OptionKind.WholeNumber when long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n):
                value = n.ToString(CultureInfo.InvariantCulture);
                return range ? Check(n, name) : null;
            case OptionKind.Number or OptionKind.WholeNumber:
                return Problem(text, name);
            case OptionKind.Choice:
                var match = Choices.FirstOrDefault(c => string.Equals(c, text, StringComparison.OrdinalIgnoreCase));
                value = match ?? text;
                return match is null ? $"{name}: '{text}' is not one of: {string.Join(", ", Choices)}.{ClosestName.Suggestion(text, Choices)}" : null;
            case OptionKind.Boolean:
                if (!bool.TryParse(text, out var b)) return Problem(text, name);
                value = b ? "true" : "false";
                return null;
            case OptionKind.Names:
                return null;
            case OptionKind.NamedValues:
                int eq = text.IndexOf('=');
                string? problem = eq <= 0 ? "" : Value!.Parse(text.Substring(eq + 1), name, out _);
                return problem is null ? null : $"{name} '{text}': expected {Expected}.{(eq > 0 && Value!.Kind == OptionKind.Choice ? ClosestName.Suggestion(text.Substring(eq + 1), Value.Choices) : "")}";
            default:
                return null;
        }
    }

    /// <summary>The entries of a list option: split at ';' and ',' (as MSBuild item lists are), trimmed, empty ones dropped.</summary>
    public static IEnumerable<string> Entries(IEnumerable<string> values) =>
        values.SelectMany(v => v.Split([';', ','], StringSplitOptions.RemoveEmptyEntries)).Select(v => v.Trim()).Where(v => v.Length > 0);
}

/// <summary>Every option, in the order `dotnet scalpel prune --help` lists them.</summary>
public static class OptionSpecs
{
    public static readonly OptionSpec Target = new("--target", "HardwareTarget", OptionKind.Text,
        "Hardware target: host, mcu-cortex-m4, x64-sse, x64-avx2, x64-avx512, arm64-neon, gpu, or a profile .json file.", "host");
    public static readonly OptionSpec Out = new("--out", null, OptionKind.Text, "Output folder.");
    public static readonly OptionSpec Namespace = new("--namespace", "Namespace", OptionKind.Text, "Namespace of the generated class.", "Scalpel.Generated");
    public static readonly OptionSpec Class = new("--class", "ClassName", OptionKind.Text, "Generated class name (default: from the model file name).");
    public static readonly OptionSpec Method = new("--method", "Method", OptionKind.Choice,
        "scalpel (per the target's parallelism), traditional (unstructured, CSR: the paper's baseline) or dense.", "scalpel", choices: ["scalpel", "traditional", "dense"]);
    public static readonly OptionSpec Calibration = new("--calibration", "CalibrationData", OptionKind.File, "Calibration inputs, .npy float32 [N, ...input shape].");
    public static readonly OptionSpec Validation = new("--validation", "ValidationData", OptionKind.File, "Validation inputs, .npy float32 [N, ...input shape].");
    public static readonly OptionSpec Labels = new("--labels", "ValidationLabels", OptionKind.File, "Validation labels, .npy int32/int64 [N].");
    public static readonly OptionSpec MaxAccuracyDrop = new("--max-accuracy-drop", "MaxAccuracyDrop", OptionKind.Number,
        "Largest accepted accuracy drop, in percentage points: a pruning step is kept only where the validation set shows it with 95% one-sided confidence.", "0.5", min: 0, max: 100, unit: "percentage points");
    public static readonly OptionSpec MinAgreement = new("--min-agreement", "MinAgreement", OptionKind.Number,
        "Without labels: smallest accepted top-1 agreement with the original model (shown on the validation set with 95% one-sided confidence).", "0.99", min: 0, max: 1);
    public static readonly OptionSpec Criterion = new("--criterion", "Criterion", OptionKind.Choice,
        "Group scoring: dataaware (default with calibration data) or magnitude.", choices: ["dataaware", "magnitude"]);
    public static readonly OptionSpec KeepDense = new("--keep-dense", "KeepDense", OptionKind.Names,
        "Layer names or kinds (fc, conv) to leave unpruned, e.g. fc or \"/1/Gemm;/3/Gemm\".");
    public static readonly OptionSpec Sparsity = new("--sparsity", "Sparsity", OptionKind.NamedValues,
        "Fixed sparsity per layer name or kind, e.g. fc=0.8 or \"fc=0.8;/1/Gemm=0.9\" (applied as asked, without the search; a warning says when the accuracy guard would have refused it).",
        value: new(null, null, OptionKind.Number, "", min: 0, max: 1, maxExclusive: true), valueName: "FRACTION");
    public static readonly OptionSpec Technique = new("--technique", "Technique", OptionKind.NamedValues,
        "Technique per layer name or kind instead of the target's choice (weight, csr or node), e.g. conv=node or \"conv=node;fc=weight;/1/Gemm=csr\".",
        value: new(null, null, OptionKind.Choice, "", choices: ["weight", "csr", "node"]), valueName: "TECHNIQUE");
    public static readonly OptionSpec Train = new("--train", "TrainingData", OptionKind.File,
        "Training inputs, .npy float32 [N, ...input shape]: prune and retrain in steps (masked fine-tuning).");
    public static readonly OptionSpec TrainLabels = new("--train-labels", "TrainingLabels", OptionKind.File, "Training labels, .npy int32/int64 [N].");
    public static readonly OptionSpec Epochs = new("--epochs", "RetrainEpochs", OptionKind.WholeNumber, "Retraining epochs after each pruning step.", "3", min: 1, max: 1000);
    public static readonly OptionSpec RetrainSteps = new("--retrain-steps", null, OptionKind.WholeNumber,
        "Pruning steps of rising sparsity at most, each followed by retraining.", "8", min: 0);
    public static readonly OptionSpec LearningRate = new("--learning-rate", null, OptionKind.Number,
        "Peak learning rate of retraining (Adam, cosine schedule).", "0.001", min: 0, max: 1, minExclusive: true, maxExclusive: true);
    public static readonly OptionSpec Distillation = new("--distillation", null, OptionKind.Number,
        "Weight of distillation from the original model's logits during retraining, 0 to 1.", "0.5", min: 0, max: 1);
    public static readonly OptionSpec NodeSelection = new("--node-selection", "NodeSelection", OptionKind.Choice,
        "With --train: which channels node steps remove: filter (smallest filters first) or gates (learned node gates with an L1 penalty, the paper's).",
        "filter", choices: ["filter", "gates"]);
    public static readonly OptionSpec GatePenalty = new("--gate-penalty", null, OptionKind.Number,
        "With --node-selection gates: weight of the L1 penalty on the gates.", "0.02", min: 0);
    // A build does not time by default: timings would make the report differ from build to build.
    public static readonly OptionSpec Measure = new("--measure", "MeasureLayers", OptionKind.Boolean,
        "Time each layer's generated kernel on this machine for the report (when the target's vectors run in hardware here).", "true", buildDefault: "false");
    public static readonly OptionSpec MaxModelBytes = new("--max-model-bytes", "MaxModelBytes", OptionKind.WholeNumber,
        "Largest total of tensor bytes a model may declare (a guard against hostile files).", "1073741824", min: 1);
    public static readonly OptionSpec CopyToOutputDirectory = new(null, "CopyToOutputDirectory", OptionKind.Choice,
        "Copies the pruned model next to the app.", "Never", choices: ["Never", "Always", "PreserveNewest", "IfDifferent"]);

    public static readonly IReadOnlyList<OptionSpec> All =
    [
        Target, Out, Namespace, Class, Method, Calibration, Validation, Labels, MaxAccuracyDrop, MinAgreement, Criterion, KeepDense, Sparsity, Technique,
        Train, TrainLabels, Epochs, RetrainSteps, LearningRate, Distillation, NodeSelection, GatePenalty, Measure, MaxModelBytes, CopyToOutputDirectory,
    ];

    /// <summary>
    /// The rules between the data files: labels need their inputs, training data its labels. Null when they hold,
    /// else the first broken one, naming the options as <paramref name="name"/> does (the option or the metadata).
    /// </summary>
    public static (ErrorCode Code, string Message)? CheckDataFiles(bool validation, bool labels, bool train, bool trainLabels, Func<OptionSpec, string> name)
    {
        if (labels && !validation)
            return (ErrorCode.Option, $"{name(Labels)} is given without {name(Validation)}: labels belong to validation inputs.");
        if (trainLabels && !train)
            return (ErrorCode.Option, $"{name(TrainLabels)} is given without {name(Train)}: labels belong to training inputs.");
        if (train && !trainLabels) // a data problem, as a labels file missing from a pair is
            return (ErrorCode.Data, $"{name(Train)} is given without {name(TrainLabels)}: training data needs its labels.");
        return null;
    }
}
