namespace Scalpel.Onnx;

// ErrorCode, WarningCode and DiagnosticId: src/Shared/DiagnosticCodes.cs, shared with the MSBuild task assembly.

/// <summary>A problem with a model or its data that the user must fix; the message names the file, node or tensor.</summary>
public class ScalpelException(ErrorCode code, string message, Exception? inner = null) : Exception(message, inner)
{
    public ScalpelException(string message, Exception? inner = null) : this(ErrorCode.InvalidModel, message, inner) { }

    public ErrorCode Code { get; } = code;
}

/// <summary>The model is valid ONNX but uses something Scalpel.Build does not support.</summary>
public sealed class UnsupportedModelException(string message) : ScalpelException(ErrorCode.UnsupportedModel, message);

/// <summary>One line per diagnostic in the compiler style MSBuild and editors understand: "error SCALPEL1002: text".</summary>
public static class Diagnostic
{
    /// <summary>The diagnostic id, e.g. SCALPEL1002.</summary>
    public static string Id(int code) => DiagnosticId.Of(code);

    public static string Error(ErrorCode code, string message) => $"error {Id((int)code)}: {OneLine(message)}";

    public static string Warning(int code, string message) => $"warning {Id(code)}: {OneLine(message)}";

    /// <summary>One line, and no other control characters: names from a model could carry terminal escape sequences.</summary>
    public static string OneLine(string s)
    {
        var chars = s.ReplaceLineEndings(" ").ToCharArray();
        for (int i = 0; i < chars.Length; i++) if (char.IsControl(chars[i])) chars[i] = '?';
        return new string(chars);
    }
}
