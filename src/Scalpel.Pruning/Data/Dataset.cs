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
    /// the model; only the first <paramref name="maxSamples"/> samples are read.
    /// </summary>
    public static Dataset Load(string inputsPath, string? labelsPath, int[] sampleShape, int classes = 0, int maxSamples = int.MaxValue)
    {
        var x = NpyFile.Read(inputsPath, maxSamples);
        string expected = $"[N, {string.Join(", ", sampleShape)}] float32";
        if (x.Floats is null || x.DType != "<f4")
            throw new ScalpelException(ErrorCode.Data, $"{inputsPath}: holds {x.DType} values; expected {expected}.");
        int sampleSize = Shape.Size(sampleShape);
        var dims = x.Shape;
        bool sameShape = dims.Length == sampleShape.Length + 1 && dims.AsSpan(1).SequenceEqual(sampleShape);
        bool flat = dims.Length == 2 && dims[1] == sampleSize;
        if (dims.Length == 0 || !(sameShape || flat))
            throw new ScalpelException(ErrorCode.Data, $"{inputsPath}: has shape ({string.Join(", ", dims)}); expected {expected} (or [N, {sampleSize}]).");
        if (dims[0] == 0) throw new ScalpelException(ErrorCode.Data, $"{inputsPath}: holds no samples.");
        int bad = Array.FindIndex(x.Floats, v => !float.IsFinite(v));
        if (bad >= 0)
            throw new ScalpelException(ErrorCode.Data,
                $"{inputsPath}: sample {bad / sampleSize}, value {bad % sampleSize} (flat index {bad}) is {x.Floats[bad]}; inputs must be finite numbers.");
        int[]? labels = null;
        if (labelsPath is not null)
        {
            var y = NpyFile.Read(labelsPath, maxSamples);
            if (y.Integers is null || y.DType is not ("<i4" or "<i8"))
                throw new ScalpelException(ErrorCode.Data, $"{labelsPath}: holds {y.DType} values; expected int32 or int64 labels [N].");
            if (y.Shape.Length != 1 || y.Shape[0] != dims[0])
                throw new ScalpelException(ErrorCode.Data, $"{labelsPath}: has shape ({string.Join(", ", y.Shape)}); expected [{dims[0]}] to match {Path.GetFileName(inputsPath)}.");
            if (classes > 0 && y.Integers.Any(l => l < 0 || l >= classes))
                throw new ScalpelException(ErrorCode.Data, $"{labelsPath}: holds labels outside [0, {classes}).");
            labels = y.Integers.Select(l => (int)l).ToArray();
        }
        return new Dataset { Inputs = x.Floats, Count = x.Rows, SampleSize = sampleSize, Labels = labels, Source = inputsPath };
    }

    public Dataset Take(int count) => count >= Count ? this : new Dataset
    {
        Inputs = Inputs.AsSpan(0, count * SampleSize).ToArray(), Count = count, SampleSize = SampleSize,
        Labels = Labels?[..count], Source = Source,
    };
}
