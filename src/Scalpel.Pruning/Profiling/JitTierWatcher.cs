using System.Collections.Concurrent;
using System.Diagnostics.Tracing;

namespace Scalpel.Pruning.Profiling;

/// <summary>
/// Watches the runtime's JIT events (MethodLoadVerbose) for the methods of generated classes, so a warm-up can
/// run until every hot method is fully optimised (tier 1, or Optimized for AggressiveOptimization methods)
/// instead of guessing a number of calls.
/// </summary>
internal sealed class JitTierWatcher : EventListener
{
    private const string RuntimeSource = "Microsoft-Windows-DotNETRuntime";
    private const long JitKeyword = 0x10;
    private const int MethodLoadVerboseId = 143;

    /// <summary>The runtime's JitOptimizationTier, bits 7-9 of MethodFlags.</summary>
    private enum Tier { Unknown = 0, MinOptJitted = 1, Optimized = 2, QuickJitted = 3, OptimizedTier1 = 4, OptimizedTier1Osr = 5, QuickJittedInstrumented = 6, OptimizedTier1Instrumented = 7 }

    // Set before any event of interest can arrive: the base constructor may call OnEventSourceCreated first.
    private volatile string? _namespace;
    private readonly ConcurrentDictionary<ulong, (string Type, string Name, Tier Tier)> _methods = new();

    public JitTierWatcher(string generatedNamespace) => _namespace = generatedNamespace + ".";

    /// <summary>Whether any JIT event arrived at all (EventSource can be disabled in trimmed or AOT apps).</summary>
    public bool Observed => !_methods.IsEmpty;

    /// <summary>Hot methods seen so far: the Run entry point, RunChunk (unless inlined) and the layer kernels.</summary>
    public int HotMethods => _methods.Values.Count(m => IsHot(m.Name));

    /// <summary>Hot methods whose latest code is not yet fully optimised, as "Name (tier)".</summary>
    public IReadOnlyList<string> Pending() =>
        _methods.Values.Where(m => IsHot(m.Name) && m.Tier is not (Tier.Optimized or Tier.OptimizedTier1 or Tier.Unknown))
            .Select(m => $"{m.Type}.{m.Name} ({m.Tier})").ToList();

    private static bool IsHot(string name) => name is "Run" or "RunChunk" || (name.Length > 3 && name[0] == 'L' && char.IsAsciiDigit(name[1]));

    protected override void OnEventSourceCreated(EventSource source)
    {
        if (source.Name == RuntimeSource) EnableEvents(source, EventLevel.Verbose, (EventKeywords)JitKeyword);
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        if (e.EventId != MethodLoadVerboseId || e.Payload is null || e.PayloadNames is null || _namespace is not { } ns) return;
        string? Text(string name) => e.PayloadNames.IndexOf(name) is var i and >= 0 ? e.Payload[i] as string : null;
        ulong Number(string name) => e.PayloadNames.IndexOf(name) is var i and >= 0 ? Convert.ToUInt64(e.Payload[i], System.Globalization.CultureInfo.InvariantCulture) : 0;
        var type = Text("MethodNamespace");
        if (type is null || !type.StartsWith(ns, StringComparison.Ordinal)) return;
        var tier = (Tier)((Number("MethodFlags") >> 7) & 0x7);
        // OSR code is a loop entry into a tier-0 method, not a replacement for it: keep waiting for tier 1.
        _methods[Number("MethodID")] = (type, Text("MethodName") ?? "", tier);
    }
}
