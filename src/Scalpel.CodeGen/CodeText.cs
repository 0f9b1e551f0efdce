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
    public static readonly IReadOnlySet<string> ReservedNames = new HashSet<string>(StringComparer.Ordinal)
    {
        "Weights", "Run", "RunChunk", "Embedded", "InputSize", "OutputSize", "WeightsResourceName", "CheckSparse", "Load", "Read", "Reader",
        "System", "Math", "MathF", "Array", "Span", "ReadOnlySpan", "MemoryExtensions", "BinaryPrimitives", "MemoryMarshal", "Unsafe", "SHA256",
        "Volatile", "Interlocked", "Stream", "MemoryStream", "BitConverter", "ArgumentException", "ArgumentOutOfRangeException",
        "ArgumentNullException", "InvalidDataException", "InvalidOperationException", "Vector", "Vector64", "Vector128", "Vector256",
        "Vector512", "MethodImpl", "MethodImplAttribute", "MethodImplOptions", "SectionLengths", "SectionTypes",
    };

    /// <summary>Checks a namespace (dotted) and class name, as the user gave them, before they are written into code.</summary>
    public static void CheckNames(string ns, string className)
    {
        string? Problem(string name, string what, bool dotted)
        {
            if (!(dotted ? DottedIdentifier() : Identifier()).IsMatch(name))
                return $"{what} '{Comment(name)}' is not a valid C# {what}: use ASCII letters, digits and '_'{(dotted ? " in parts separated by '.'" : "")}, not starting with a digit.";
            foreach (var part in name.Split('.'))
            {
                if (Keywords.Contains(part))
                    return $"{what} '{name}' uses the C# keyword '{part}'; pick another name (for example '{char.ToUpperInvariant(part[0]) + part[1..]}Model').";
                if (ReservedNames.Contains(part))
                    return $"{what} '{name}' uses '{part}', a name the generated code itself uses; pick another name.";
                if (part.Length > 1 && part.StartsWith("__", StringComparison.Ordinal))
                    return $"{what} '{name}' starts a part with '__', which C# reserves; pick another name.";
            }
            return null;
        }
        var problem = Problem(ns, "namespace", dotted: true) ?? Problem(className, "class name", dotted: false);
        if (problem is not null) throw new ScalpelException(ErrorCode.Option, problem);
        if (className.All(char.IsAsciiLetterLower))
            throw new ScalpelException(ErrorCode.Option, $"class name '{className}' is all lower-case, which C# reserves for future keywords (warning CS8981); capitalise it.");
    }

    // \z, not $: '$' also matches before a trailing newline.
    [GeneratedRegex(@"^[A-Za-z_][A-Za-z0-9_]*\z")]
    private static partial Regex Identifier();

    [GeneratedRegex(@"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\z")]
    private static partial Regex DottedIdentifier();

    /// <summary>C# keywords, and the contextual ones that cannot name a type.</summary>
    private static readonly HashSet<string> Keywords = new(StringComparer.Ordinal)
    {
        "abstract", "as", "base", "bool", "break", "byte", "case", "catch", "char", "checked", "class", "const", "continue", "decimal",
        "default", "delegate", "do", "double", "else", "enum", "event", "explicit", "extern", "false", "finally", "fixed", "float", "for",
        "foreach", "goto", "if", "implicit", "in", "int", "interface", "internal", "is", "lock", "long", "namespace", "new", "null", "object",
        "operator", "out", "override", "params", "private", "protected", "public", "readonly", "ref", "return", "sbyte", "sealed", "short",
        "sizeof", "stackalloc", "static", "string", "struct", "switch", "this", "throw", "true", "try", "typeof", "uint", "ulong", "unchecked",
        "unsafe", "ushort", "using", "virtual", "void", "volatile", "while",
        "dynamic", "var", "record", "global", "nint", "nuint", "scoped", "file", "required", "field", "value", "partial", "notnull", "unmanaged",
        "_",
    };
}
