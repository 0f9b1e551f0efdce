using Scalpel.Onnx;

namespace Scalpel.Pruning.Data;

/// <summary>Samples for calibration or validation: [Count, SampleSize] float32, optionally with labels.</summary>
public sealed class Dataset
{
    public required float[] Inputs { get; init; }
    public required int Count { get; init; }
    public required int SampleSize { get; init; }
    public int[]? Labels { get; init; }
    public required string Source { get; init; }

    public ReadOnlySpan<float> Sample(int i) => Inputs.AsSpan(i * SampleSize, SampleSize);

    /// <summary>
    /// Loads X.npy (float32 [N, ...sample shape]) and optional labels Y.npy (int32/int64 [N]), checking both against
    /// the model; only the first <paramref name="maxSamples"/> samples are read. Errors name the command-line option
    /// that gave each file ("(given by --labels)"), which the MSBuild task turns into its metadata name.
    /// </summary>
    public static Dataset Load(string inputsPath, string? labelsPath, int[] sampleShape, int classes = 0, int maxSamples = int.MaxValue, string? inputsOption = null, string? labelsOption = null)
    {
        string inputs = inputsPath + GivenBy(inputsOption), labelsName = labelsPath + GivenBy(labelsOption);
        var x = NpyFile.Read(inputsPath, maxSamples);
        string expected = $"[N, {string.Join(", ", sampleShape)}] float32";
        if (x.Floats is null || x.DType != "<f4")
            throw new ScalpelException(ErrorCode.Data, $"{inputs}: holds {Plain(x.DType)}; expected {expected} (32-bit floats).");
        int sampleSize = Shape.Size(sampleShape);
        var dims = x.Shape;
        bool sameShape = dims.Length == sampleShape.Length + 1 && dims.AsSpan(1).SequenceEqual(sampleShape);
        bool flat = dims.Length == 2 && dims[1] == sampleSize;
        if (dims.Length == 0 || !(sameShape || flat))
            throw new ScalpelException(ErrorCode.Data, $"{inputs}: has shape ({string.Join(", ", dims)}); expected {expected} (or [N, {sampleSize}]).");
        if (dims[0] == 0) throw new ScalpelException(ErrorCode.Data, $"{inputs}: holds no samples.");
        int bad = Array.FindIndex(x.Floats, v => !float.IsFinite(v));
        if (bad >= 0)
            throw new ScalpelException(ErrorCode.Data,
                $"{inputs}: sample {bad / sampleSize}, value {bad % sampleSize} (flat index {bad}) is {x.Floats[bad]}; inputs must be finite numbers.");
        int[]? labels = null;
        if (labelsPath is not null)
        {
            var y = NpyFile.Read(labelsPath, maxSamples);
            if (y.Integers is null || y.DType is not ("<i4" or "<i8"))
                throw new ScalpelException(ErrorCode.Data, $"{labelsName}: holds {Plain(y.DType)}; labels must be whole numbers (int32 or int64), one class index per sample [N].");
            if (y.Shape.Length != 1 || y.Shape[0] != dims[0])
                throw new ScalpelException(ErrorCode.Data, $"{labelsName}: has shape ({string.Join(", ", y.Shape)}); expected [{dims[0]}] to match {Path.GetFileName(inputsPath)}.");
            if (classes > 0 && y.Integers.Any(l => l < 0 || l >= classes))
                throw new ScalpelException(ErrorCode.Data, $"{labelsName}: holds labels outside [0, {classes}).");
            labels = y.Integers.Select(l => (int)l).ToArray();
        }
        return new Dataset { Inputs = x.Floats, Count = x.Rows, SampleSize = sampleSize, Labels = labels, Source = inputsPath };
    }

    private static string GivenBy(string? option) => option is null ? "" : $" (given by {option})";

    /// <summary>A NumPy dtype in words: "&lt;f4" means nothing to most users.</summary>
    private static string Plain(string dtype) => dtype switch
    {
        "<f4" => "32-bit floats (float32)",
        "<f8" => "64-bit floats (float64)",
        "<i4" => "32-bit integers (int32)",
        "<i8" => "64-bit integers (int64)",
        "|u1" => "unsigned bytes (uint8)",
        "|i1" => "signed bytes (int8)",
        _ => $"values of NumPy type '{dtype}'",
    };

    public Dataset Take(int count) => count >= Count ? this : new Dataset
    {
        Inputs = Inputs.AsSpan(0, count * SampleSize).ToArray(), Count = count, SampleSize = SampleSize,
        Labels = Labels?[..count], Source = Source,
    };
}
