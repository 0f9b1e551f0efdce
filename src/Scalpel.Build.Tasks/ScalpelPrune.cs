using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using Scalpel.Onnx;

namespace Scalpel.Build.Tasks;

/// <summary>
/// Prunes one resolved &lt;ScalpelModel&gt; by running the bundled dotnet-scalpel command line through the
/// dotnet host (ILLink's pattern): ONNX Runtime's native code and the pipeline's memory stay out of MSBuild's
/// process, so node reuse, parallel builds and IDE builds never load native code or lock files. The tool's
/// "error SCALPEL####: ..." lines become MSBuild diagnostics on the project file; cancelling the build kills
/// the tool, and its temporary files are removed (the tool renames its outputs into place only when all are
/// written, so nothing half-written remains).
/// </summary>
public sealed class ScalpelPrune : ToolTask
{
    private static readonly Regex DiagnosticLine = new(@"^(error|warning) (SCALPEL\d{4}): (.*)$", RegexOptions.CultureInvariant);

    /// <summary>The tool's last progress line: "[12 s] done: 74.7 % smaller, ...".</summary>
    private static readonly Regex SummaryLine = new(@"^(\[[^\]]*\] )?done: ", RegexOptions.CultureInvariant);

    /// <summary>One item from ResolveScalpelModels.</summary>
    [Required] public ITaskItem Model { get; set; } = null!;

    [Required] public string ProjectFile { get; set; } = "";

    protected override string ToolName => "dotnet";

    protected override MessageImportance StandardOutputLoggingImportance => MessageImportance.Normal;

    protected override MessageImportance StandardErrorLoggingImportance => MessageImportance.Normal;

    private string Meta(string name) => Model.GetMetadata(name);

    /// <summary>The tool's warnings and summary line, kept with the cached result to be shown again when it is reused.</summary>
    private readonly List<string> _replay = [];

    public override bool Execute()
    {
        string outputDirectory = Path.GetDirectoryName(Meta("ScalpelGeneratedCode"))!;
        var cache = new PruneCache(Meta("ScalpelCacheDirectory"), Meta("ScalpelClassName"), Meta("ScalpelCacheOptions"),
            Meta("ScalpelCacheFiles").Split(['\n'], StringSplitOptions.RemoveEmptyEntries));
        if (Try("reuse", () => cache.Restore(outputDirectory)) is { } log)
        {
            Log.LogMessage(MessageImportance.High, $"Scalpel: {Model.ItemSpec} for target {Meta("ScalpelTarget")} into {Meta("ScalpelClassName")}: reusing the result of an earlier build with the same inputs and options ({cache.Entry})");
            foreach (var line in log) LogEventsFromTextOutput(line, MessageImportance.Normal);
        }
        else
        {
            Log.LogMessage(MessageImportance.High, $"Scalpel: pruning {Model.ItemSpec} for target {Meta("ScalpelTarget")} into {Meta("ScalpelClassName")}");
            if (!base.Execute()) return false;
            Try("store", () => { cache.Store(outputDirectory, _replay); return ""; });
        }
        Log.LogMessage(MessageImportance.High, $"Scalpel: report {Meta("ScalpelReport")}");
        return !Log.HasLoggedErrors;
    }

    /// <summary>The cache only saves time: when it cannot be read or written, the build prunes (or goes on) without it.</summary>
    private T? Try<T>(string what, Func<T?> action) where T : class
    {
        try { return action(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.LogMessage(MessageImportance.Normal, $"Scalpel: could not {what} the cached prune result ({e.Message}); going on without it");
            return null;
        }
    }

    protected override string GenerateFullPathToTool()
    {
        // `dotnet build` tells its tasks which host runs it; elsewhere (Visual Studio) look on PATH.
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host)) return host!;
        string exe = Path.DirectorySeparatorChar == '\\' ? "dotnet.exe" : "dotnet";
        return (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Where(d => d.Length > 0).Select(d => Path.Combine(d.Trim('"'), exe)).FirstOrDefault(File.Exists) ?? exe;
    }

    protected override string GenerateCommandLineCommands() => Meta("ScalpelCommandLine");

    protected override int ExecuteTool(string pathToTool, string responseFileCommands, string commandLineCommands)
    {
        try
        {
            return base.ExecuteTool(pathToTool, responseFileCommands, commandLineCommands);
        }
        finally
        {
            RemoveTemporaryFiles();
        }
    }

    protected override void LogEventsFromTextOutput(string singleLine, MessageImportance messageImportance)
    {
        var m = DiagnosticLine.Match(singleLine);
        if (!m.Success)
        {
            if (SummaryLine.Match(singleLine) is { Success: true } summary) _replay.Add(singleLine.Substring(summary.Length - "done: ".Length));
            // Phase lines (not indented) and accepted search steps ("  + ") show at the default verbosity; tries and the files written with -v:n.
            bool phase = !singleLine.StartsWith(" ", StringComparison.Ordinal) && !singleLine.StartsWith("report:", StringComparison.Ordinal);
            Log.LogMessage(phase || singleLine.StartsWith("  + ", StringComparison.Ordinal) ? MessageImportance.High : messageImportance, "  " + singleLine);
            return;
        }
        if (m.Groups[1].Value == "warning") _replay.Add(singleLine);
        // The tool names the option that gave a file; in a build that is the item's metadata.
        string text = ScalpelModelItem.DataOptions.Aggregate(m.Groups[3].Value, (t, d) => t.Replace($"(given by {d.Option})", $"(given by {d.Metadata})"));
        string message = $"ScalpelModel '{Model.ItemSpec}': {text}";
        if (m.Groups[1].Value == "error") Diagnostics.Error(Log, ProjectFile, m.Groups[2].Value, message);
        else Diagnostics.Warning(Log, ProjectFile, m.Groups[2].Value, message);
    }

    protected override bool HandleTaskExecutionErrors()
    {
        if (!Log.HasLoggedErrors)
            Diagnostics.Error(Log, ProjectFile, ErrorCode.Internal, $"ScalpelModel '{Model.ItemSpec}': dotnet-scalpel exited with code {ExitCode} without a diagnostic; see the build log for its output.");
        return false;
    }

    /// <summary>The tool writes "C.g.cs.tmp-PID" and renames; a killed tool leaves those behind.</summary>
    private void RemoveTemporaryFiles()
    {
        string dir = Path.GetDirectoryName(Meta("ScalpelGeneratedCode"))!;
        if (!Directory.Exists(dir)) return;
        foreach (var file in Directory.GetFiles(dir, Meta("ScalpelClassName") + ".*.tmp-*"))
        {
            try { File.Delete(file); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
    }
}
