using Microsoft.Build.Utilities;

namespace Scalpel.Build.Tasks;

/// <summary>SCALPEL#### errors and warnings, attributed to the consuming project's file.</summary>
internal static class Diagnostics
{
    public const string Subcategory = "Scalpel";

    /// <summary>Warning: a ScalpelModel metadata name the task does not know (a typo is otherwise silently ignored).</summary>
    public const int UnknownMetadata = 2101; // the task's own warnings from 2101: the pipeline numbers its warnings up from 2001

    public static string Id(int code) => "SCALPEL" + code.ToString("D4", System.Globalization.CultureInfo.InvariantCulture);

    public static void Error(TaskLoggingHelper log, string projectFile, int code, string message) =>
        log.LogError(Subcategory, Id(code), null, projectFile, 0, 0, 0, 0, message);

    public static void Error(TaskLoggingHelper log, string projectFile, string id, string message) =>
        log.LogError(Subcategory, id, null, projectFile, 0, 0, 0, 0, message);

    public static void Warning(TaskLoggingHelper log, string projectFile, string id, string message) =>
        log.LogWarning(Subcategory, id, null, projectFile, 0, 0, 0, 0, message);
}
