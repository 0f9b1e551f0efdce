using System;
using System.Collections.Generic;
using System.Linq;

namespace Scalpel.CodeGen;

// Written once: compiled into Scalpel.CodeGen, which refuses bad names, and into the MSBuild task assembly
// (netstandard2.0), which checks an item's names before the tool starts.

/// <summary>Whether a namespace and a class name can hold generated code.</summary>
public static class GeneratedNames
{
    /// <summary>
    /// The members and nested types of every generated class: the class cannot take one of their names (CS0542).
    /// </summary>
    public static readonly IReadOnlyCollection<string> Members = new HashSet<string>(StringComparer.Ordinal)
    {
        "Weights", "Run", "RunChunk", "Embedded", "InputSize", "OutputSize", "InputShape", "OutputShape", "WeightsResourceName",
        "CheckSparse", "Load", "Read", "Reader", "SectionLengths", "SectionTypes",
        "Exp", "Sigmoid", "Silu", "HardSigmoid", "HardSwish", "LeakyRelu", "WinogradWeights3x3", "WinogradWeights5x5",
        "ExpOfNegative", "Transpose", "Prefetch", "WinogradTileWeights3x3", "WinogradTileWeights5x5",
    };

    /// <summary>
    /// The framework types generated code names, with their namespaces: it writes them global::-qualified, so a type
    /// of the user's with one of these names cannot capture them; the class itself cannot take one.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> FrameworkTypes = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["System"] = "",
        ["Span"] = "System", ["ReadOnlySpan"] = "System", ["Math"] = "System", ["MathF"] = "System", ["Array"] = "System",
        ["BitConverter"] = "System", ["ArgumentException"] = "System", ["ArgumentOutOfRangeException"] = "System",
        ["ArgumentNullException"] = "System", ["InvalidOperationException"] = "System",
        ["Stream"] = "System.IO", ["MemoryStream"] = "System.IO", ["InvalidDataException"] = "System.IO",
        ["BinaryPrimitives"] = "System.Buffers.Binary",
        ["Unsafe"] = "System.Runtime.CompilerServices", ["MethodImpl"] = "System.Runtime.CompilerServices",
        ["MethodImplOptions"] = "System.Runtime.CompilerServices",
        ["MemoryMarshal"] = "System.Runtime.InteropServices",
        ["Vector64"] = "System.Runtime.Intrinsics", ["Vector128"] = "System.Runtime.Intrinsics",
        ["Vector256"] = "System.Runtime.Intrinsics", ["Vector512"] = "System.Runtime.Intrinsics", ["Sse"] = "System.Runtime.Intrinsics.X86",
        ["SHA256"] = "System.Security.Cryptography",
        ["GeneratedCode"] = "System.CodeDom.Compiler",
        ["Volatile"] = "System.Threading", ["Interlocked"] = "System.Threading",
    };

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

    /// <summary>Why <paramref name="ns"/> or <paramref name="className"/> cannot hold generated code, or null when both can.</summary>
    public static string? Problem(string ns, string className)
    {
        string? problem = Check(ns, "namespace", dotted: true) ?? Check(className, "class name", dotted: false);
        if (problem is null && Members.Contains(className))
            problem = $"class name '{className}' is a name the generated code itself uses (a member of the generated class); pick another name.";
        if (problem is null && FrameworkTypes.ContainsKey(className))
            problem = $"class name '{className}' is the name of a framework type the generated code uses; pick another name.";
        if (problem is null && className.All(c => c >= 'a' && c <= 'z'))
            problem = $"class name '{className}' is all lower-case, which C# reserves for future keywords (warning CS8981); capitalise it.";
        return problem;
    }

    private static string? Check(string name, string what, bool dotted)
    {
        var parts = name.Split('.');
        if (name.Length == 0 || (!dotted && parts.Length > 1) || !parts.All(IsAsciiIdentifier))
            return $"{what} '{Printable(name)}' is not a valid C# {what}: use ASCII letters, digits and '_'{(dotted ? " in parts separated by '.'" : "")}, not starting with a digit.";
        foreach (var part in parts)
        {
            if (Keywords.Contains(part))
                return $"{what} '{name}' uses the C# keyword '{part}'; pick another name (for example '{char.ToUpperInvariant(part[0]) + part.Substring(1)}Model').";
            if (part.Length > 1 && part.StartsWith("__", StringComparison.Ordinal))
                return $"{what} '{name}' starts a part with '__', which C# reserves; pick another name.";
        }
        return null;
    }

    private static bool IsAsciiIdentifier(string s) =>
        s.Length > 0 && !(s[0] >= '0' && s[0] <= '9') && s.All(c => c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));

    /// <summary>The name with anything but printable ASCII as \uXXXX: a name may come from a file, and messages reach a terminal.</summary>
    private static string Printable(string s) =>
        string.Concat(s.Select(c => c >= ' ' && c <= '~' ? c.ToString() : $"\\u{(int)c:X4}"));
}
