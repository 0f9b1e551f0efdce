using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using Microsoft.Build.Framework;
using Scalpel.Onnx;

namespace Scalpel.Build.Tasks;

/// <summary>
/// One &lt;ScalpelModel&gt; item read into the dotnet-scalpel command line that prunes it: its metadata
/// checked, defaults applied, relative paths resolved against the project folder. This is the only place
/// that maps item metadata to command-line options.
/// </summary>
internal sealed class ScalpelModelItem
{
    private static readonly string[] Methods = ["scalpel", "traditional", "dense"];
    private static readonly string[] Criteria = ["dataaware", "magnitude"];
    private static readonly string[] CopyModes = ["Never", "Always", "PreserveNewest", "IfDifferent"];
    private static readonly string[] NodeSelections = ["filter", "gates"];

    /// <summary>The data file metadata and the command-line options they become.</summary>
    public static readonly (string Metadata, string Option)[] DataOptions =
        [("CalibrationData", "--calibration"), ("ValidationData", "--validation"), ("ValidationLabels", "--labels"), ("TrainingData", "--train"), ("TrainingLabels", "--train-labels")];

    /// <summary>Every metadata name Read understands (docs/msbuild.md's table).</summary>
    public static readonly string[] KnownMetadata =
    [
        "HardwareTarget", "ClassName", "Namespace", "CalibrationData", "ValidationData", "ValidationLabels", "TrainingData", "TrainingLabels",
        "RetrainEpochs", "NodeSelection", "MaxAccuracyDrop", "MinAgreement", "Method", "Criterion", "KeepDense", "Sparsity", "Technique",
        "MeasureLayers", "CopyToOutputDirectory", "MaxModelBytes",
    ];

    /// <summary>Metadata that IDEs and MSBuild put on any item: not ours, never a typo of ours.</summary>
    private static readonly string[] GeneralMetadata = ["Link", "Visible", "DependentUpon", "SubType", "Generator", "LastGenOutput", "CustomToolNamespace", "DesignTime", "AutoGen", "Pack", "PackagePath"];

    public string ItemSpec { get; private set; } = "";
    public string ModelPath { get; private set; } = "";
    public string ClassName { get; private set; } = "";
    public string Namespace { get; private set; } = "";
    public string Target { get; private set; } = "";
    public string? TargetFile { get; private set; }
    public IReadOnlyList<string> DataFiles { get; private set; } = [];
    public string CopyToOutputDirectory { get; private set; } = "";
    public IReadOnlyList<string> Arguments { get; private set; } = [];

    /// <summary>Reads an item, or returns the first problem with it as (code, message).</summary>
    public static ScalpelModelItem Read(ITaskItem item, string projectDirectory, string outputDirectory, string defaultTarget, string defaultNamespace, out (ErrorCode Code, string Message)? problem)
    {
        problem = null;
        var errors = new List<(ErrorCode, string)>();
        string spec = item.ItemSpec;
        string Meta(string name) => item.GetMetadata(name).Trim();
        string Full(string path) => Path.GetFullPath(Path.Combine(projectDirectory, path));
        void Bad(string name, string why) => errors.Add((ErrorCode.Option, $"ScalpelModel '{spec}': {name}='{Meta(name)}' {why}."));

        string model = Full(spec);
        if (!File.Exists(model)) errors.Add((ErrorCode.ModelNotFound, $"ScalpelModel '{spec}': model file not found ({model})."));

        string className = Meta("ClassName");
        if (className.Length == 0) className = ModelNames.ClassNameFrom(spec);
        else if (!IsIdentifier(className)) Bad("ClassName", "is not a valid C# class name");

        string ns = Meta("Namespace");
        if (ns.Length == 0) ns = ModelNames.NamespaceFrom(defaultNamespace);
        else if (!ns.Split('.').All(IsIdentifier)) Bad("Namespace", "is not a valid C# namespace");

        // MSBuild reserves the metadata name "Target" (MSB4118), hence HardwareTarget.
        string target = Meta("HardwareTarget");
        if (target.Length == 0) target = defaultTarget.Trim().Length > 0 ? defaultTarget.Trim() : "host";
        string? targetFile = null;
        if (target.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || target.IndexOfAny(['/', '\\']) >= 0)
        {
            targetFile = Full(target);
            if (!File.Exists(targetFile)) errors.Add((ErrorCode.Target, $"ScalpelModel '{spec}': target profile '{target}' not found ({targetFile})."));
            target = targetFile;
        }

        var args = new List<string> { "prune", model, "--target", target, "--out", outputDirectory.TrimEnd('/', '\\'), "--namespace", ns, "--class", className };
        var dataFiles = new List<string>();
        foreach (var (name, option) in DataOptions)
        {
            if (Meta(name).Length == 0) continue;
            string path = Full(Meta(name));
            if (!File.Exists(path)) errors.Add((ErrorCode.Data, $"ScalpelModel '{spec}': {name} file not found ({path})."));
            dataFiles.Add(path);
            args.AddRange([option, path]);
        }
        if (Meta("ValidationLabels").Length > 0 && Meta("ValidationData").Length == 0)
            Bad("ValidationLabels", "needs ValidationData (the inputs the labels belong to)");

        if ((Meta("TrainingData").Length > 0) != (Meta("TrainingLabels").Length > 0))
            Bad(Meta("TrainingData").Length > 0 ? "TrainingData" : "TrainingLabels", "needs TrainingData and TrainingLabels together");
        if (Number("RetrainEpochs", 1, 1000, whole: true) is { } epochs) args.AddRange(["--epochs", epochs]);
        if (Number("MaxAccuracyDrop", 0, 100) is { } drop) args.AddRange(["--max-accuracy-drop", drop]);
        if (Number("MinAgreement", 0, 1) is { } agreement) args.AddRange(["--min-agreement", agreement]);
        if (Number("MaxModelBytes", 1, 1e15, whole: true) is { } bytes) args.AddRange(["--max-model-bytes", bytes]);
        if (OneOf("Method", Methods) is { } method) args.AddRange(["--method", method]);
        if (OneOf("Criterion", Criteria) is { } criterion) args.AddRange(["--criterion", criterion]);
        if (OneOf("NodeSelection", NodeSelections) is { } selection) args.AddRange(["--node-selection", selection]);
        args.AddRange(["--measure", Boolean("MeasureLayers") ?? "false"]);
        foreach (var (name, option) in new[] { ("KeepDense", "--keep-dense"), ("Sparsity", "--sparsity"), ("Technique", "--technique") })
            foreach (var value in List(name)) args.AddRange([option, value]);

        string copy = OneOf("CopyToOutputDirectory", CopyModes) ?? "Never";

        if (errors.Count > 0)
        {
            problem = errors[0];
            return null!;
        }
        return new ScalpelModelItem
        {
            ItemSpec = spec, ModelPath = model, ClassName = className, Namespace = ns, Target = target, TargetFile = targetFile,
            DataFiles = dataFiles, CopyToOutputDirectory = copy, Arguments = args,
        };

        string? Number(string name, double min, double max, bool whole = false)
        {
            string v = Meta(name);
            if (v.Length == 0) return null;
            if (!double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) || x < min || x > max || whole && x != Math.Floor(x))
            {
                Bad(name, string.Format(CultureInfo.InvariantCulture, "is not a {0} from {1} to {2}", whole ? "whole number" : "number", min, max));
                return null;
            }
            return x.ToString("R", CultureInfo.InvariantCulture);
        }

        string? OneOf(string name, string[] allowed)
        {
            string v = Meta(name);
            if (v.Length == 0) return null;
            var match = allowed.FirstOrDefault(a => string.Equals(a, v, StringComparison.OrdinalIgnoreCase));
            if (match is null) Bad(name, $"is not one of: {string.Join(", ", allowed)}");
            return match;
        }

        string? Boolean(string name)
        {
            string v = Meta(name);
            if (v.Length == 0) return null;
            if (bool.TryParse(v, out var b)) return b ? "true" : "false";
            Bad(name, "is not true or false");
            return null;
        }

        IEnumerable<string> List(string name) => Meta(name).Split([';', ','], StringSplitOptions.RemoveEmptyEntries).Select(s => s.Trim()).Where(s => s.Length > 0);
    }

    /// <summary>One message per metadata name that is neither ours nor general, naming the closest of ours: a typo would otherwise be silently ignored.</summary>
    public static IEnumerable<string> UnknownMetadata(ITaskItem item) =>
        item.CloneCustomMetadata().Keys.Cast<string>()
            .Where(name => !KnownMetadata.Concat(GeneralMetadata).Contains(name, StringComparer.OrdinalIgnoreCase))
            .OrderBy(name => name, StringComparer.Ordinal)
            .Select(name => $"ScalpelModel '{item.ItemSpec}': unknown metadata '{name}' is ignored.{ClosestName.Suggestion(name, KnownMetadata)} Known metadata: {string.Join(", ", KnownMetadata)}.");

    private static bool IsIdentifier(string s) =>
        s.Length > 0 && (char.IsLetter(s[0]) || s[0] == '_') && s.All(c => char.IsLetterOrDigit(c) || c == '_');

    /// <summary>The arguments as one command line, quoted the way .NET splits a command line on every OS.</summary>
    public string CommandLine(string cliPath) => string.Join(" ", new[] { "exec", cliPath }.Concat(Arguments).Select(Quote));

    private static string Quote(string arg)
    {
        if (arg.Length > 0 && arg.IndexOfAny([' ', '\t', '"']) < 0) return arg;
        var sb = new StringBuilder("\"");
        int backslashes = 0;
        foreach (char c in arg)
        {
            if (c == '\\') { backslashes++; continue; }
            sb.Append('\\', c == '"' ? backslashes * 2 + 1 : backslashes).Append(c);
            backslashes = 0;
        }
        return sb.Append('\\', backslashes * 2).Append('"').ToString();
    }
}
