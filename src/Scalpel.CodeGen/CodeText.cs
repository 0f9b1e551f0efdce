using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Scalpel.Onnx;

namespace Scalpel.CodeGen;

/// <summary>
/// The one gate for text that reaches generated code from outside (model names and doc strings, file names,
/// target profile names, class and namespace names): hostile text must not end a comment or line.
/// </summary>
public static partial class CodeText
{
    /// <summary>Longest comment text kept from one name; longer names are cut (with "...").</summary>
    public const int MaxCommentLength = 200;

    /// <summary>
    /// Text safe inside a // comment or a #region line: ASCII letters, digits, space and _ . / - : are kept;
    /// every other UTF-16 unit (line terminators, U+2028/U+2029/U+0085, '*', '#', quotes, backslash) becomes \uXXXX.
    /// </summary>
    public static string Comment(string? text)
    {
        if (string.IsNullOrEmpty(text)) return "";
        var sb = new StringBuilder(Math.Min(text.Length, MaxCommentLength) + 8);
        foreach (var ch in text)
        {
            if (sb.Length >= MaxCommentLength)
            {
                sb.Append("...");
                break;
            }
            if (char.IsAsciiLetterOrDigit(ch) || ch is '_' or '.' or '/' or '-' or ':' or ' ') sb.Append(ch);
            else sb.Append("\\u").Append(((int)ch).ToString("X4", CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }

    /// <summary>
    /// Names the generated class's own code uses unqualified: its members (a class cannot hold a member of its own
    /// name) and the types its kernels call. A class or namespace part with one of these names would shadow them.
    /// </summary>
    /// <summary>Refuses a namespace or class name that cannot hold generated code (<see cref="GeneratedNames"/>).</summary>
    public static void CheckNames(string ns, string className)
    {
        if (GeneratedNames.Problem(ns, className) is { } problem) throw new ScalpelException(ErrorCode.Option, problem);
    }
}
