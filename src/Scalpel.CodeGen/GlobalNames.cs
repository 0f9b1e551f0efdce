using System.Text;

namespace Scalpel.CodeGen;

/// <summary>
/// Qualifies the framework names generated code uses with <c>global::</c>. The generated class lives in the user's
/// namespace, where a type of theirs named <c>Span</c> or <c>Vector256</c> would otherwise capture the name.
/// Comments and string and character literals are left as they are; interpolation holes are code.
/// </summary>
internal static class GlobalNames
{
    public static string Qualify(string source)
    {
        var output = new StringBuilder(source.Length + source.Length / 4);
        int end = Code(source, 0, output, nested: false);
        if (end != source.Length) throw new InvalidOperationException("Unbalanced braces in generated code.");
        return output.ToString();
    }

    /// <summary>Copies code from <paramref name="i"/>; nested (an interpolation hole), stops before its closing brace.</summary>
    private static int Code(string s, int i, StringBuilder o, bool nested)
    {
        int depth = 0;
        while (i < s.Length)
        {
            char c = s[i];
            char next = i + 1 < s.Length ? s[i + 1] : '\0';
            if ((c == '/' && next == '/') || (c == '#' && Before(s, i) is '\n' or '\0')) i = CopyUntil(s, i, o, "\n", include: false); // comment, directive
            else if (c == '/' && next == '*') i = CopyUntil(s, i + 2, o.Append("/*"), "*/", include: true);
            else if (c == '$' && next == '"') i = Interpolated(s, i + 2, o.Append("$\""));
            else if (c == '@' && next == '"') i = Verbatim(s, i + 2, o.Append("@\""));
            else if (c is '"' or '\'') i = Quoted(s, i + 1, o.Append(c), c);
            else if (char.IsLetter(c) || c == '_')
            {
                int start = i;
                while (i < s.Length && (char.IsLetterOrDigit(s[i]) || s[i] == '_')) i++;
                var name = s[start..i];
                int b = Previous(s, start);
                bool qualified = b >= 0 && (s[b] == '.' || (s[b] == ':' && b > 0 && s[b - 1] == ':'));
                if (!qualified && GeneratedNames.FrameworkTypes.TryGetValue(name, out var ns))
                    o.Append("global::").Append(ns.Length == 0 ? "" : ns + ".");
                o.Append(name);
            }
            else
            {
                if (c == '{') depth++;
                else if (c == '}' && depth-- == 0 && nested) return i;
                o.Append(c);
                i++;
            }
        }
        return i;
    }

    /// <summary>The index of the last character before <paramref name="i"/> that is not a space or tab, or -1.</summary>
    private static int Previous(string s, int i)
    {
        while (--i >= 0 && s[i] is ' ' or '\t') { }
        return i;
    }

    private static char Before(string s, int i) => Previous(s, i) is >= 0 and var b ? s[b] : '\0';

    private static int CopyUntil(string s, int i, StringBuilder o, string stop, bool include)
    {
        int at = s.IndexOf(stop, i, StringComparison.Ordinal);
        int end = at < 0 ? s.Length : include ? at + stop.Length : at;
        o.Append(s, i, end - i);
        return end;
    }

    private static int Quoted(string s, int i, StringBuilder o, char quote)
    {
        while (i < s.Length)
        {
            char c = s[i++];
            o.Append(c);
            if (c == '\\' && i < s.Length) o.Append(s[i++]);
            else if (c == quote) break;
        }
        return i;
    }

    private static int Verbatim(string s, int i, StringBuilder o)
    {
        while (i < s.Length)
        {
            char c = s[i++];
            o.Append(c);
            if (c != '"') continue;
            if (i < s.Length && s[i] == '"') o.Append(s[i++]);
            else break;
        }
        return i;
    }

    private static int Interpolated(string s, int i, StringBuilder o)
    {
        while (i < s.Length)
        {
            char c = s[i];
            char next = i + 1 < s.Length ? s[i + 1] : '\0';
            if ((c == '{' && next == '{') || (c == '}' && next == '}') || c == '\\')
            {
                o.Append(c).Append(next);
                i += 2;
            }
            else if (c == '{')
            {
                i = Code(s, i + 1, o.Append('{'), nested: true);
                if (i < s.Length) o.Append(s[i++]); // the hole's closing brace
            }
            else
            {
                o.Append(c);
                i++;
                if (c == '"') break;
            }
        }
        return i;
    }
}
