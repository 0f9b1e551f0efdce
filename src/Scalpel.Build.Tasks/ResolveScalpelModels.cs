using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using Scalpel.Onnx;

namespace Scalpel.Build.Tasks;

/// <summary>
/// Checks each &lt;ScalpelModel&gt; item, applies the defaults, and returns it with the paths of its outputs
/// and the inputs its pruning depends on. Writes one stamp file per model holding the exact command line
/// and this package's version, rewritten only when it changes, so the prune target reruns when any option
/// does. Cheap and free of native code: it runs in every build, design-time builds included.
/// </summary>
public sealed class ResolveScalpelModels : Task
{
    [Required] public ITaskItem[] Models { get; set; } = [];

    /// <summary>The project file: diagnostics point at it.</summary>
    [Required] public string ProjectFile { get; set; } = "";

    /// <summary>Absolute folder for the generated files ($(IntermediateOutputPath)scalpel/).</summary>
    [Required] public string OutputDirectory { get; set; } = "";

    [Required] public string CliPath { get; set; } = "";

    /// <summary>Absolute folder of the prune results shared by every configuration ($(BaseIntermediateOutputPath)scalpel/), one subfolder per hash of the inputs.</summary>
    [Required] public string CacheDirectory { get; set; } = "";

    public string DefaultTarget { get; set; } = "host";

    public string DefaultNamespace { get; set; } = "";

    [Output] public ITaskItem[] Resolved { get; private set; } = [];

    public override bool Execute()
    {
        string projectDirectory = Path.GetDirectoryName(Path.GetFullPath(ProjectFile))!;
        string version = typeof(ResolveScalpelModels).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
        var resolved = new List<ITaskItem>();
        var classes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var item in Models)
        {
            foreach (var message in ScalpelModelItem.UnknownMetadata(item)) Diagnostics.Warning(Log, ProjectFile, WarningCode.UnknownMetadata, message);
            var model = ScalpelModelItem.Read(item, projectDirectory, OutputDirectory, DefaultTarget, DefaultNamespace, out var problem);
            if (problem is { } p)
            {
                Diagnostics.Error(Log, ProjectFile, p.Code, p.Message);
                continue;
            }
            string fullName = model.Namespace + "." + model.ClassName;
            if (classes.TryGetValue(fullName, out var other))
            {
                Diagnostics.Error(Log, ProjectFile, ErrorCode.Option, $"ScalpelModel '{model.ItemSpec}': class {fullName} is already generated for '{other}'; give one of them another ClassName.");
                continue;
            }
            classes[fullName] = model.ItemSpec;
            resolved.Add(Resolve(item, model, version));
        }
        Resolved = resolved.ToArray();
        return !Log.HasLoggedErrors;
    }

    private TaskItem Resolve(ITaskItem item, ScalpelModelItem model, string version)
    {
        string Output(string extension) => Path.Combine(OutputDirectory, model.ClassName + extension);
        string cli = Path.GetFullPath(CliPath);
        string commandLine = model.CommandLine(cli);
        string stamp = Output(".stamp");
        WriteIfChanged(stamp, $"Scalpel.Build {version}\n{commandLine}\n");

        var inputs = new List<string> { model.ModelPath, stamp, cli, typeof(ResolveScalpelModels).Assembly.Location };
        inputs.AddRange(model.DataFiles);
        if (model.TargetFile is not null) inputs.Add(model.TargetFile);

        var result = new TaskItem(item.ItemSpec);
        item.CopyMetadataTo(result);
        void Set(string name, string value) => ((ITaskItem2)result).SetMetadataValueLiteral(name, value);
        Set("ScalpelClassName", model.ClassName);
        Set("ScalpelNamespace", model.Namespace);
        Set("ScalpelTarget", model.Target);
        Set("ScalpelCommandLine", commandLine);
        Set("ScalpelGeneratedCode", Output(".g.cs"));
        Set("ScalpelWeights", Output(".bin"));
        Set("ScalpelWeightsResourceName", model.Namespace + "." + model.ClassName + ".bin");
        Set("ScalpelPrunedModel", Output(".onnx"));
        Set("ScalpelReport", Output(".report.md"));
        Set("ScalpelReportJson", Output(".report.json"));
        Set("ScalpelStamp", stamp);
        Set("ScalpelCopyToOutputDirectory", model.CopyToOutputDirectory);
        // What the cache key hashes: the options without the (per-configuration) output folder, and the files whose bytes decide the result.
        Set("ScalpelCacheDirectory", CacheDirectory);
        Set("ScalpelCacheOptions", $"Scalpel.Build {version}\n" + string.Join("\n", model.Arguments.Select((a, i) => i > 0 && model.Arguments[i - 1] == "--out" ? "" : a)));
        string cliDirectory = Path.GetDirectoryName(cli)!;
        var libraries = Directory.Exists(cliDirectory) ? Directory.GetFiles(cliDirectory, "Scalpel.*.dll").OrderBy(f => f, StringComparer.Ordinal) : Enumerable.Empty<string>();
        Set("ScalpelCacheFiles", string.Join("\n", inputs.Where(f => f != stamp).Concat(libraries)));
        // A list for the prune target's Inputs: set in MSBuild's escaped form so only the separators split it.
        result.SetMetadata("ScalpelInputs", string.Join(";", inputs.Select(Escape)));
        return result;
    }

    private static void WriteIfChanged(string path, string content)
    {
        if (File.Exists(path) && File.ReadAllText(path) == content) return;
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content, new UTF8Encoding(false));
    }

    /// <summary>MSBuild's escaping (%XX) of the characters it treats specially in item lists.</summary>
    private static string Escape(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (char c in s)
        {
            if ("%*?@$();'".IndexOf(c) >= 0) sb.Append('%').Append(((int)c).ToString("X2"));
            else sb.Append(c);
        }
        return sb.ToString();
    }
}
