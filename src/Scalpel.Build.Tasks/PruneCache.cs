using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text;

namespace Scalpel.Build.Tasks;

/// <summary>
/// Prune results by the hash of everything that decides them (the options, the bytes of the model, its data
/// files, a target profile and the tool), in one folder per hash that every configuration of the project
/// shares. A Debug build after a Release one, or a build that restores the options an earlier build used
/// (say after a failed one), copies the result instead of pruning again. An entry appears whole or not at
/// all: it is written under a temporary name and renamed.
/// </summary>
internal sealed class PruneCache(string root, string className, string options, IEnumerable<string> files)
{
    /// <summary>The outputs an entry holds; C.g.cs last, as the tool writes them.</summary>
    private static readonly string[] Extensions = [".bin", ".onnx", ".report.json", ".report.md", ".g.cs"];

    /// <summary>The tool's warnings and summary line, replayed when the entry is used.</summary>
    private const string LogExtension = ".log";

    /// <summary>Entries kept per project: older ones (by last use) are deleted when a new one is stored.</summary>
    private const int MaxEntries = 16;

    public string Entry { get; } = Path.Combine(root, Key(options, files));

    private static string Key(string options, IEnumerable<string> files)
    {
        using var sha = SHA256.Create();
        var bytes = new List<byte>(Encoding.UTF8.GetBytes(options + "\n"));
        foreach (var file in files)
        {
            bytes.AddRange(Encoding.UTF8.GetBytes(file + "\n"));
            using var stream = File.OpenRead(file);
            bytes.AddRange(sha.ComputeHash(stream));
        }
        return string.Concat(sha.ComputeHash(bytes.ToArray()).Take(10).Select(b => b.ToString("x2")));
    }

    /// <summary>Copies the entry's outputs into <paramref name="outputDirectory"/> (as new files, so the build sees them up to date) and returns its log lines; null without a whole entry.</summary>
    public string[]? Restore(string outputDirectory)
    {
        if (!Extensions.Append(LogExtension).All(e => File.Exists(Path.Combine(Entry, className + e)))) return null;
        Directory.CreateDirectory(outputDirectory);
        foreach (var extension in Extensions)
        {
            string target = Path.Combine(outputDirectory, className + extension);
            string temporary = target + ".tmp-" + System.Diagnostics.Process.GetCurrentProcess().Id;
            File.Copy(Path.Combine(Entry, className + extension), temporary, overwrite: true);
            File.SetLastWriteTimeUtc(temporary, DateTime.UtcNow);
            if (File.Exists(target)) File.Delete(target);
            File.Move(temporary, target);
        }
        Directory.SetLastWriteTimeUtc(Entry, DateTime.UtcNow);
        return File.ReadAllLines(Path.Combine(Entry, className + LogExtension));
    }

    /// <summary>Stores the outputs a successful prune wrote and its log lines, unless another build stored them first.</summary>
    public void Store(string outputDirectory, IEnumerable<string> log)
    {
        if (Directory.Exists(Entry)) return;
        string temporary = Entry + ".tmp-" + Guid.NewGuid().ToString("N");
        Directory.CreateDirectory(temporary);
        try
        {
            foreach (var extension in Extensions)
                File.Copy(Path.Combine(outputDirectory, className + extension), Path.Combine(temporary, className + extension));
            File.WriteAllLines(Path.Combine(temporary, className + LogExtension), log, new UTF8Encoding(false));
            Directory.Move(temporary, Entry);
        }
        catch (IOException) when (Directory.Exists(Entry))
        {
            // A parallel build of another configuration stored the same result first.
        }
        finally
        {
            if (Directory.Exists(temporary)) Directory.Delete(temporary, recursive: true);
        }
        foreach (var old in new DirectoryInfo(root).GetDirectories().Where(d => d.Name.IndexOf('.') < 0).OrderByDescending(d => d.LastWriteTimeUtc).Skip(MaxEntries))
        {
            try { old.Delete(recursive: true); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
    }
}
