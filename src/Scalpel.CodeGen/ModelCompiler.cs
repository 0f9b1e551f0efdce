using System.Text;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;

namespace Scalpel.CodeGen;

/// <summary>Load, analyse and emit an unpruned model; writes C.g.cs and C.bin atomically (all or nothing).</summary>
public static class ModelCompiler
{
    public sealed record Result(ModelGraph Model, GeneratedModel Code, string SourcePath, string WeightsPath);

    public static GeneratedModel Generate(string modelPath, CodeTarget target, string ns, string className)
    {
        var model = GraphAnalyzer.Analyze(OnnxModel.Load(modelPath));
        return CSharpEmitter.Emit(model, new EmitOptions(ns, className, target, Path.GetFileName(modelPath)));
    }

    public static Result Compile(string modelPath, CodeTarget target, string outDir, string ns, string className, long maxModelBytes = OnnxModel.DefaultMaxTensorBytes)
    {
        var model = GraphAnalyzer.Analyze(OnnxModel.Load(modelPath, maxModelBytes));
        var code = CSharpEmitter.Emit(model, new EmitOptions(ns, className, target, Path.GetFileName(modelPath)));
        var source = Path.Combine(outDir, className + ".g.cs");
        var weights = Path.Combine(outDir, className + ".bin");
        WriteAll(outDir, [(weights, code.Weights), (source, Encoding.UTF8.GetBytes(code.Source))]);
        return new Result(model, code, source, weights);
    }

    /// <summary>Held while outputs are moved into place: a cancelled run waits for it, so it never stops halfway through.</summary>
    public static readonly object CommitLock = new();

    private const string TempMarker = ".scalpel-tmp-";

    /// <summary>
    /// All or nothing: every file is written to a temporary folder beside <paramref name="outDir"/>, then, once all
    /// are written and the run was not cancelled, moved in (in list order); if a move fails, the files it replaced
    /// are put back. Temporary folders and files that killed runs left behind are removed first.
    /// </summary>
    public static void WriteAll(string outDir, IReadOnlyList<(string Path, byte[] Bytes)> files, CancellationToken cancellation = default)
    {
        outDir = Path.GetFullPath(outDir).TrimEnd(Path.DirectorySeparatorChar);
        var parent = Path.GetDirectoryName(outDir) ?? outDir;
        var prefix = "." + Path.GetFileName(outDir) + TempMarker;
        Directory.CreateDirectory(parent);
        RemoveStale(parent, outDir, prefix, files.Select(f => Path.GetFileName(f.Path)));
        var temp = Path.Combine(parent, prefix + Environment.ProcessId + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(temp);
        try
        {
            var staged = new List<string>();
            foreach (var (path, bytes) in files)
            {
                cancellation.ThrowIfCancellationRequested();
                var file = Path.Combine(temp, Path.GetFileName(path));
                using (var stream = new FileStream(file, FileMode.CreateNew, FileAccess.Write))
                {
                    stream.Write(bytes);
                    stream.Flush(flushToDisk: true);
                }
                staged.Add(file);
            }
            lock (CommitLock)
            {
                cancellation.ThrowIfCancellationRequested();
                Directory.CreateDirectory(outDir);
                var done = new List<(string Target, string? Backup)>();
                try
                {
                    for (int i = 0; i < files.Count; i++)
                    {
                        var target = files[i].Path;
                        string? backup = null;
                        if (File.Exists(target) || Directory.Exists(target))
                        {
                            backup = staged[i] + ".previous";
                            File.Move(target, backup);
                        }
                        done.Add((target, backup));
                        File.Move(staged[i], target);
                    }
                }
                catch
                {
                    // Put back what was replaced, newest first, so the folder holds the previous run's files.
                    for (int i = done.Count - 1; i >= 0; i--)
                    {
                        var (target, backup) = done[i];
                        if (!File.Exists(staged[i])) File.Delete(target); // the new file had been moved in
                        if (backup is not null && File.Exists(backup)) File.Move(backup, target, overwrite: true);
                    }
                    throw;
                }
            }
        }
        finally
        {
            try { Directory.Delete(temp, recursive: true); }
            catch (IOException) { } // removed by the next run
        }
    }

    /// <summary>
    /// Temporary folders of runs whose process is gone, and the "C.bin.tmp-PID" files older versions wrote for
    /// these outputs. Only names ending in a process id that no longer runs: nothing else in the folder is touched.
    /// </summary>
    private static void RemoveStale(string parent, string outDir, string prefix, IEnumerable<string> outputNames)
    {
        static bool Stale(string pid)
        {
            if (!int.TryParse(pid, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id)) return false;
            try { using var p = System.Diagnostics.Process.GetProcessById(id); return p.HasExited; }
            catch (ArgumentException) { return true; }
        }
        try
        {
            foreach (var dir in Directory.EnumerateDirectories(parent, prefix + "*"))
                if (Stale(Path.GetFileName(dir)[prefix.Length..].Split('-')[0]))
                    Directory.Delete(dir, recursive: true);
            if (Directory.Exists(outDir))
                foreach (var name in outputNames)
                    foreach (var file in Directory.EnumerateFiles(outDir, name + ".tmp-*"))
                        if (Stale(Path.GetFileName(file)[(name.Length + 5)..]))
                            File.Delete(file);
        }
        catch (IOException) { } // another run is cleaning up too
        catch (UnauthorizedAccessException) { }
    }
}
