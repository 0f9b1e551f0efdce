using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.Json;
using Scalpel.CodeGen;

namespace Scalpel.Pruning.Profiling;

/// <summary>
/// Conv kernel timings on this machine, kept in a JSON file between runs so a layer shape is timed once per
/// machine, runtime, code generator version and target: later runs read the same timings and so pick the same
/// kernels. An unreadable file counts as empty; one that cannot be written leaves the timings unsaved.
/// </summary>
public sealed class KernelTimingCache
{
    /// <summary>$SCALPEL_KERNEL_CACHE, else conv-kernels.json in the user's local application data (null without one).</summary>
    public static string? DefaultPath =>
        Environment.GetEnvironmentVariable("SCALPEL_KERNEL_CACHE") is { Length: > 0 } path ? path
        : Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData) is { Length: > 0 } data ? Path.Combine(data, "Scalpel", "conv-kernels.json")
        : null;

    private readonly string? _path;
    private readonly Dictionary<string, Dictionary<string, double>> _entries;
    private readonly Dictionary<string, Dictionary<string, double>> _added = new(StringComparer.Ordinal);

    public KernelTimingCache(string? path)
    {
        _path = path;
        _entries = Read(path) ?? new(StringComparer.Ordinal);
    }

    /// <summary>Microseconds per candidate kernel (by name) for the key, if timed before.</summary>
    public IReadOnlyDictionary<string, double>? Get(string key) => _entries.GetValueOrDefault(key);

    public void Set(string key, Dictionary<string, double> microseconds)
    {
        _entries[key] = microseconds;
        _added[key] = microseconds;
    }

    /// <summary>Merges the new timings into the file as it is now (another build may have added some) and replaces it whole.</summary>
    public string? Save()
    {
        if (_path is null || _added.Count == 0) return null;
        try
        {
            var merged = Read(_path) ?? new(StringComparer.Ordinal);
            foreach (var (key, value) in _added) merged[key] = value;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(_path))!);
            string temp = $"{_path}.{Environment.ProcessId}.tmp";
            File.WriteAllText(temp, JsonSerializer.Serialize(new SortedDictionary<string, Dictionary<string, double>>(merged, StringComparer.Ordinal), new JsonSerializerOptions { WriteIndented = true }));
            File.Move(temp, _path, overwrite: true);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"the conv kernel timings were not saved to {_path}: {e.Message}";
        }
    }

    private static Dictionary<string, Dictionary<string, double>>? Read(string? path)
    {
        try
        {
            if (path is null || !File.Exists(path)) return null;
            var read = JsonSerializer.Deserialize<Dictionary<string, Dictionary<string, double>>>(File.ReadAllText(path));
            return read is null ? null : new(read, StringComparer.Ordinal);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }

    /// <summary>What the timings depend on besides the layer: this CPU, the runtime, the code generator's version and the target's vectors.</summary>
    public static string Context(CodeTarget target) => string.Join(" | ",
        Cpu(), RuntimeInformation.FrameworkDescription,
        typeof(CSharpEmitter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unversioned",
        $"{target.Name} {target.SimdBits} bit{(target.Fma ? " fma" : "")}");

    private static string Cpu()
    {
        try
        {
            if (File.Exists("/proc/cpuinfo"))
                foreach (var line in File.ReadLines("/proc/cpuinfo"))
                    if (line.StartsWith("model name", StringComparison.Ordinal) && line.IndexOf(':') is > 0 and var colon)
                        return line[(colon + 1)..].Trim();
        }
        catch (IOException)
        {
        }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }
}
