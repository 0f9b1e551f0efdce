using System.Buffers.Binary;
using Scalpel.Onnx.Proto;

namespace Scalpel.Onnx;

/// <summary>Decodes TensorProto payloads (inline, raw or external) with size and path checks.</summary>
public static class TensorReader
{
    /// <summary>Largest tensor accepted, in elements (1 GiB of float32): bigger claims are treated as hostile.</summary>
    public const long MaxElements = 1L << 28;

    public static int[] Dims(TensorProto t, string source)
    {
        var dims = new int[t.Dims.Count];
        long count = 1;
        for (int i = 0; i < dims.Length; i++)
        {
            long d = t.Dims[i];
            if (d < 0)
                throw new ScalpelException($"{source}: tensor '{t.Name}' has a negative dimension ({d}).");
            count *= d;
            if (d > MaxElements || count > MaxElements)
                throw new ScalpelException(
                    $"{source}: tensor '{t.Name}' claims dimensions [{string.Join(",", t.Dims)}], more than the {MaxElements} elements Scalpel.Build accepts.");
            dims[i] = (int)d;
        }
        return dims;
    }

    /// <summary>The bytes a tensor's dims and type claim, without reading it; saturates instead of overflowing.</summary>
    public static long DeclaredBytes(TensorProto t)
    {
        long size = (TensorProto.Types.DataType)t.DataType switch
        {
            TensorProto.Types.DataType.Int8 or TensorProto.Types.DataType.Uint8 or TensorProto.Types.DataType.Bool => 1,
            TensorProto.Types.DataType.Float16 or TensorProto.Types.DataType.Bfloat16 or TensorProto.Types.DataType.Int16 or TensorProto.Types.DataType.Uint16 => 2,
            TensorProto.Types.DataType.Double or TensorProto.Types.DataType.Int64 or TensorProto.Types.DataType.Uint64 or TensorProto.Types.DataType.Complex64 => 8,
            TensorProto.Types.DataType.Complex128 => 16,
            _ => 4,
        };
        foreach (var d in t.Dims)
        {
            if (d <= 0) return 0;
            if (d > long.MaxValue / 16 / size) return long.MaxValue / 2;
            size *= d;
        }
        return size;
    }

    public static Tensor ReadFloat(TensorProto t, OnnxModel model)
    {
        var dims = Dims(t, model.Source);
        int n = Shape.Size(dims);
        var type = (TensorProto.Types.DataType)t.DataType;
        var data = new float[n];
        switch (type)
        {
            case TensorProto.Types.DataType.Float:
                if (t.FloatData.Count > 0) Copy(t.FloatData, data, t, model.Source, v => v);
                else Raw(t, model, n * 4, (raw, i) => BinaryPrimitives.ReadSingleLittleEndian(raw[(i * 4)..]), data);
                break;
            case TensorProto.Types.DataType.Double:
                if (t.DoubleData.Count > 0) Copy(t.DoubleData, data, t, model.Source, v => (float)v);
                else Raw(t, model, n * 8, (raw, i) => (float)BinaryPrimitives.ReadDoubleLittleEndian(raw[(i * 8)..]), data);
                break;
            case TensorProto.Types.DataType.Float16:
                // float16 inline data lives in int32_data, one value per element (low 16 bits).
                if (t.Int32Data.Count > 0) Copy(t.Int32Data, data, t, model.Source, v => (float)BitConverter.UInt16BitsToHalf((ushort)v));
                else Raw(t, model, n * 2, (raw, i) => (float)BinaryPrimitives.ReadHalfLittleEndian(raw[(i * 2)..]), data);
                break;
            default:
                throw new UnsupportedModelException(
                    $"{model.Source}: tensor '{t.Name}' has element type {type}; Scalpel.Build supports float32 (float16 and float64 are converted).");
        }
        // NaN or infinite weights give garbage that still "runs": refuse them up front.
        int bad = Array.FindIndex(data, v => !float.IsFinite(v));
        if (bad >= 0)
            throw new ScalpelException($"{model.Source}: tensor '{t.Name}' holds {data[bad]} at index {bad} ({FormatIndex(bad, dims)}); weights must be finite numbers.");
        return new Tensor(t.Name, dims, data);
    }

    /// <summary>A flat row-major index as [i,j,...] in <paramref name="dims"/>.</summary>
    public static string FormatIndex(long flat, int[] dims)
    {
        var index = new long[dims.Length];
        for (int i = dims.Length - 1; i >= 0; i--)
        {
            if (dims[i] == 0) break;
            index[i] = flat % dims[i];
            flat /= dims[i];
        }
        return "[" + string.Join(",", index) + "]";
    }

    /// <summary>Integer tensors (shapes, axes), as int64.</summary>
    public static long[] ReadInt64(TensorProto t, OnnxModel model)
    {
        var dims = Dims(t, model.Source);
        int n = Shape.Size(dims);
        var data = new long[n];
        switch ((TensorProto.Types.DataType)t.DataType)
        {
            case TensorProto.Types.DataType.Int64:
                if (t.Int64Data.Count > 0) Copy(t.Int64Data, data, t, model.Source, v => v);
                else Raw(t, model, n * 8, (raw, i) => BinaryPrimitives.ReadInt64LittleEndian(raw[(i * 8)..]), data);
                break;
            case TensorProto.Types.DataType.Int32:
                if (t.Int32Data.Count > 0) Copy(t.Int32Data, data, t, model.Source, v => v);
                else Raw(t, model, n * 4, (raw, i) => BinaryPrimitives.ReadInt32LittleEndian(raw[(i * 4)..]), data);
                break;
            default:
                throw new UnsupportedModelException(
                    $"{model.Source}: tensor '{t.Name}' should hold integers but has element type {(TensorProto.Types.DataType)t.DataType}.");
        }
        return data;
    }

    private delegate T RawDecoder<T>(ReadOnlySpan<byte> raw, int index);

    private static void Copy<TIn, TOut>(IList<TIn> source, TOut[] target, TensorProto t, string file, Func<TIn, TOut> convert)
    {
        if (source.Count != target.Length)
            throw new ScalpelException($"{file}: tensor '{t.Name}' holds {source.Count} values for {target.Length} elements.");
        for (int i = 0; i < target.Length; i++) target[i] = convert(source[i]);
    }

    private static void Raw<T>(TensorProto t, OnnxModel model, int bytes, RawDecoder<T> decode, T[] target)
    {
        var raw = t.DataLocation == TensorProto.Types.DataLocation.External
            ? ReadExternal(t, model, bytes)
            : t.RawData.Span;
        if (raw.Length != bytes)
            throw new ScalpelException($"{model.Source}: tensor '{t.Name}' holds {raw.Length} bytes of data; its shape needs {bytes}.");
        for (int i = 0; i < target.Length; i++) target[i] = decode(raw, i);
    }

    private static byte[] ReadExternal(TensorProto t, OnnxModel model, int bytes)
    {
        string? location = null;
        long offset = 0, length = -1;
        foreach (var entry in t.ExternalData)
        {
            switch (entry.Key)
            {
                case "location": location = entry.Value; break;
                case "offset": offset = ExternalNumber(entry, t, model); break;
                case "length": length = ExternalNumber(entry, t, model); break;
            }
        }
        var path = ResolveExternalPath(location, t.Name, model);
        if (length < 0) length = bytes;
        if (length != bytes)
            throw new ScalpelException($"{model.Source}: tensor '{t.Name}' declares {length} bytes of external data; its shape needs {bytes}.");
        // The size comes from stat, before opening: FIFOs and devices report 0 and are never opened (a FIFO would block).
        long size = new FileInfo(path).Length;
        if (offset > size - length)
            throw new ScalpelException($"{model.Source}: tensor '{t.Name}' reads bytes {offset}..{offset + length} of '{location}', which has {size}.");
        if (length == 0) return [];
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        if (file.Length != size)
            throw new ScalpelException($"{model.Source}: external data file '{location}' changed while it was read.");
        var buffer = new byte[length];
        file.Position = offset;
        file.ReadExactly(buffer);
        return buffer;
    }

    /// <summary>offset and length: decimal digits only (no sign, spaces or suffix), within a long.</summary>
    private static long ExternalNumber(StringStringEntryProto entry, TensorProto t, OnnxModel model) =>
        long.TryParse(entry.Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new ScalpelException($"{model.Source}: tensor '{t.Name}' has external data {entry.Key} '{entry.Value}'; expected a whole number of bytes.");

    /// <summary>External data must live inside the model's folder: no absolute paths, no '..'.</summary>
    public static string ResolveExternalPath(string? location, string tensor, OnnxModel model)
    {
        if (string.IsNullOrEmpty(location))
            throw new ScalpelException($"{model.Source}: tensor '{tensor}' is external but names no location.");
        if (model.BaseDirectory is null)
            throw new ScalpelException($"{model.Source}: tensor '{tensor}' uses external data, which needs a model loaded from a file.");
        var parts = location.Split('/', '\\');
        if (Path.IsPathRooted(location) || location.Contains(':') || parts.Contains(".."))
            throw new ScalpelException(
                $"{model.Source}: tensor '{tensor}' points at external data '{location}' outside the model's folder; only relative paths inside it are allowed.");
        var baseDir = Path.GetFullPath(model.BaseDirectory);
        var full = Path.GetFullPath(Path.Combine(baseDir, Path.Combine(parts)));
        if (!full.StartsWith(baseDir.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new ScalpelException($"{model.Source}: tensor '{tensor}' points at external data '{location}' outside the model's folder.");
        if (!File.Exists(full))
            throw new ScalpelException($"{model.Source}: external data file '{location}' for tensor '{tensor}' not found.");
        // No symbolic link anywhere below the model's folder: a link could lead out of it (to /etc/passwd, say).
        for (var p = full; p.Length > baseDir.TrimEnd(Path.DirectorySeparatorChar).Length; p = Path.GetDirectoryName(p)!)
            if (new FileInfo(p).LinkTarget is not null)
                throw new ScalpelException(
                    $"{model.Source}: external data '{location}' for tensor '{tensor}' goes through the symbolic link '{Path.GetRelativePath(baseDir, p)}'; copy the data file into the model's folder instead.");
        SafeFile.RequireRegular(full, ErrorCode.InvalidModel, $"{model.Source}: external data '{location}' for tensor '{tensor}'");
        return full;
    }
}
