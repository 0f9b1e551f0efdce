using Xunit;
using System.Text.RegularExpressions;
using Scalpel.Onnx;

namespace Scalpel.Tests;

/// <summary>The user documentation agrees with the code: diagnostic codes.</summary>
public sealed class DocsTests
{
    private static string Doc(string name) => File.ReadAllText(Path.Combine(TestData.RepoRoot, "docs", name));

    /// <summary>The rows of the Markdown table under a "## heading" (up to the next heading), as cells.</summary>
    internal static List<string[]> Table(string doc, string heading)
    {
        int start = doc.IndexOf("\n## " + heading + "\n", StringComparison.Ordinal);
        Assert.True(start >= 0, $"no section '## {heading}'");
        int end = doc.IndexOf("\n## ", start + 4, StringComparison.Ordinal);
        return doc[start..(end < 0 ? doc.Length : end)].Split('\n')
            .Where(l => l.StartsWith('|') && !l.StartsWith("|---", StringComparison.Ordinal))
            .Skip(1) // the header row
            .Select(l => l.Trim().Trim('|').Split(" | ").Select(c => c.Trim()).ToArray())
            .ToList();
    }

    [Fact]
    public void MsbuildDocListsEveryDiagnosticCodeAndNoOther()
    {
        var documented = Regex.Matches(Doc("msbuild.md"), @"^\| (SCALPEL\d{4}) \|", RegexOptions.Multiline).Select(m => m.Groups[1].Value).Order().ToList();
        var codes = Enum.GetValues<ErrorCode>().Select(DiagnosticId.Of).Concat(Enum.GetValues<WarningCode>().Select(DiagnosticId.Of)).Order().ToList();
        Assert.Equal(codes, documented);
    }
}
