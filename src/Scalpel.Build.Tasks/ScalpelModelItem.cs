using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using Microsoft.Build.Framework;
using Scalpel.CodeGen;
using Scalpel.Onnx;

namespace Scalpel.Build.Tasks;

/// <summary>
/// One &lt;ScalpelModel&gt; item read into the dotnet-scalpel command line that prunes it: its metadata
/// checked, defaults applied, relative paths resolved against the project folder. This is the only place
/// that maps item metadata to command-line options.
/// </summary>
internal sealed class ScalpelModelItem
{
    /// <summary>The data file options: a data file's error from the tool names the option, which a build shows as the metadata.</summary>
    public static readonly OptionSpec[] DataOptions = OptionSpecs.All.Where(o => o.Kind == OptionKind.File).ToArray();

    /// <summary>Every metadata name Read understands (docs/msbuild.md's table).</summary>
    public static readonly string[] KnownMetadata = OptionSpecs.All.Where(o => o.Metadata is not null).Select(o => o.Metadata!).ToArray();

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
        void Bad(string message) => errors.Add((ErrorCode.Option, $"ScalpelModel '{spec}': {message}"));

        string model = Full(spec);
        if (!File.Exists(model)) errors.Add((ErrorCode.ModelNotFound, $"ScalpelModel '{spec}': model file not found ({model})."));

        string className = Meta(OptionSpecs.Class.Metadata!);
        if (className.Length == 0) className = ModelNames.ClassNameFrom(spec);
        string ns = Meta(OptionSpecs.Namespace.Metadata!);
        if (ns.Length == 0) ns = ModelNames.NamespaceFrom(defaultNamespace);
        // The code generator's own check, before the tool starts (ClassName and Namespace metadata, or the defaults).
        if (GeneratedNames.Problem(ns, className) is { } nameProblem) Bad(nameProblem);

        // MSBuild reserves the metadata name "Target" (MSB4118), hence HardwareTarget.
        string target = Meta(OptionSpecs.Target.Metadata!);
        if (target.Length == 0) target = defaultTarget.Trim().Length > 0 ? defaultTarget.Trim() : OptionSpecs.Target.Default!;
        string? targetFile = null;
        if (target.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || target.IndexOfAny(['/', '\\']) >= 0)
        {
            targetFile = Full(target);
            if (!File.Exists(targetFile)) errors.Add((ErrorCode.Target, $"ScalpelModel '{spec}': target profile '{target}' not found ({targetFile})."));
            target = targetFile;
        }

        var args = new List<string>
        {
            "prune", model, OptionSpecs.Target.Option!, target, OptionSpecs.Out.Option!, outputDirectory.TrimEnd('/', '\\'), OptionSpecs.Namespace.Option!, ns, OptionSpecs.Class.Option!, className,
        };
        var dataFiles = new List<string>();
        // The other options, parsed and checked by their OptionSpec as the command line does, so a bad value stops here, before the tool starts.
        foreach (var option in OptionSpecs.All.Where(o => o.Metadata is not null && o.Option is not null && o.Kind != OptionKind.Text))
        {
            string value = Meta(option.Metadata!);
            if (value.Length == 0)
            {
                if (option.BuildDefault is { } fallback && option.Default != fallback) args.AddRange([option.Option!, fallback]);
            }
            else if (option.Kind == OptionKind.File)
            {
                string path = Full(value);
                if (!File.Exists(path)) errors.Add((ErrorCode.Data, $"ScalpelModel '{spec}': {option.Metadata} file not found ({path})."));
                dataFiles.Add(path);
                args.AddRange([option.Option!, path]);
            }
            else
            {
                foreach (var entry in option.Kind is OptionKind.Names or OptionKind.NamedValues ? OptionSpec.Entries([value]) : [value])
                {
                    if (option.Parse(entry, option.Metadata, out var parsed) is { } message) Bad(message);
                    else args.AddRange([option.Option!, parsed]);
                }
            }
        }
        bool Given(OptionSpec option) => Meta(option.Metadata!).Length > 0;
        if (OptionSpecs.CheckDataFiles(Given(OptionSpecs.Validation), Given(OptionSpecs.Labels), Given(OptionSpecs.Train), Given(OptionSpecs.TrainLabels), o => o.Metadata!) is { } files)
            errors.Add((files.Code, $"ScalpelModel '{spec}': {files.Message}"));

        // Not an option of the tool: the build copies the pruned model itself.
        var copyOption = OptionSpecs.CopyToOutputDirectory;
        string copy = copyOption.BuildDefault!;
        if (Meta(copyOption.Metadata!) is { Length: > 0 } copyValue && copyOption.Parse(copyValue, copyOption.Metadata, out copy) is { } copyProblem) Bad(copyProblem);

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
    }

    /// <summary>One message per metadata name that is neither ours nor general, naming the closest of ours: a typo would otherwise be silently ignored.</summary>
    public static IEnumerable<string> UnknownMetadata(ITaskItem item) =>
        item.CloneCustomMetadata().Keys.Cast<string>()
            .Where(name => !KnownMetadata.Concat(GeneralMetadata).Contains(name, StringComparer.OrdinalIgnoreCase))
            .OrderBy(name => name, StringComparer.Ordinal)
            .Select(name => $"ScalpelModel '{item.ItemSpec}': unknown metadata '{name}' is ignored.{ClosestName.Suggestion(name, KnownMetadata)} Known metadata: {string.Join(", ", KnownMetadata)}.");

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
