using System;
using System.Collections.Generic;
using System.Linq;

namespace Scalpel;

/// <summary>
/// "Did you mean" for misspelled names (item metadata, option values), shared by the command line and the
/// MSBuild task (compiled into both, which target different frameworks).
/// </summary>
internal static class ClosestName
{
    /// <summary>The known name nearest to <paramref name="name"/> by case-insensitive edit distance, or null when none is plausibly meant.</summary>
    public static string? Find(string name, IEnumerable<string> known)
    {
        var best = known.Select(k => (Name: k, Distance: Distance(name.ToLowerInvariant(), k.ToLowerInvariant())))
            .OrderBy(k => k.Distance).ThenBy(k => k.Name, StringComparer.Ordinal).FirstOrDefault();
        // A third of the name's letters wrong is still a typo; more is another word.
        return best.Name is not null && best.Distance <= Math.Max(2, name.Length / 3) ? best.Name : null;
    }

    /// <summary>" Did you mean 'X'?" or "", for appending to a message.</summary>
    public static string Suggestion(string name, IEnumerable<string> known) =>
        Find(name, known) is { } match ? $" Did you mean '{match}'?" : "";

    /// <summary>Levenshtein distance (insertions, deletions and substitutions).</summary>
    public static int Distance(string a, string b)
    {
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        var current = new int[b.Length + 1];
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
