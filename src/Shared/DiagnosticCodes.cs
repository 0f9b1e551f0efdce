using System.Globalization;

namespace Scalpel.Onnx;

// The SCALPEL#### codes, written once: compiled into Scalpel.Onnx (the pipeline) and into the MSBuild task
// assembly, which targets netstandard2.0 and cannot reference the pipeline. Public in both: the task
// assembly's public types are MSBuild's business only. docs/msbuild.md lists the codes for users.

/// <summary>
/// What kind of problem stopped a run. The number is the diagnostic code users see (SCALPEL1001 ...), in
/// the command line's output and as an MSBuild error; keep the numbers stable.
/// </summary>
public enum ErrorCode
{
    ModelNotFound = 1001,
    InvalidModel = 1002,
    UnsupportedModel = 1003,
    Target = 1004,
    Data = 1005,
    Option = 1006,
    FileAccess = 1007,
    Cancelled = 1008,
    Internal = 1009,
}

/// <summary>Something the user should know about a run that went on (SCALPEL2xxx): the pipeline's from 2001, the MSBuild task's own from 2101.</summary>
public enum WarningCode
{
    /// <summary>Neither calibration nor validation data: data-free pruning, accuracy unchecked.</summary>
    NoData = 2001,
    /// <summary>The accuracy budget allowed no pruning at all.</summary>
    NothingPruned = 2002,
    /// <summary>A sparsity fixed by the user took the validation score below the accuracy guard's floor; applied as asked.</summary>
    FixedSparsityOverBudget = 2003,
    /// <summary>The validation set is too small to show, with 95% confidence, that the budget holds for the delta measured.</summary>
    ValidationTooSmall = 2004,
    /// <summary>A ScalpelModel metadata name the task does not know (a typo is otherwise silently ignored).</summary>
    UnknownMetadata = 2101,
}

/// <summary>The text form of a code: "SCALPEL1002".</summary>
public static class DiagnosticId
{
    public static string Of(int code) => "SCALPEL" + code.ToString("D4", CultureInfo.InvariantCulture);

    public static string Of(ErrorCode code) => Of((int)code);

    public static string Of(WarningCode code) => Of((int)code);
}
