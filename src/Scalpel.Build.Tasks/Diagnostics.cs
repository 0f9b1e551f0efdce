using Microsoft.Build.Utilities;
using Scalpel.Onnx;

namespace Scalpel.Build.Tasks;

/// <summary>SCALPEL#### errors and warnings (codes in src/Shared/DiagnosticCodes.cs), attributed to the consuming project's file.</summary>
internal static class Diagnostics
{
    public const string Subcategory = "Scalpel";

    public static void Error(TaskLoggingHelper log, string projectFile, ErrorCode code, string message) =>
        Error(log, projectFile, DiagnosticId.Of(code), message);

    public static void Warning(TaskLoggingHelper log, string projectFile, WarningCode code, string message) =>
        Warning(log, projectFile, DiagnosticId.Of(code), message);

    /// <summary>An error by its id, as the tool printed it.</summary>
    public static void Error(TaskLoggingHelper log, string projectFile, string id, string message) =>
        log.LogError(Subcategory, id, null, projectFile, 0, 0, 0, 0, message);

    /// <summary>A warning by its id, as the tool printed it.</summary>
    public static void Warning(TaskLoggingHelper log, string projectFile, string id, string message) =>
        log.LogWarning(Subcategory, id, null, projectFile, 0, 0, 0, 0, message);
}
