using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;
using Scalpel.Onnx;

namespace Scalpel.Pruning.Data;

/// <summary>An array read from a NumPy .npy file (format 1.0-3.0, C order, little endian).</summary>
public sealed partial class NpyFile
{
    public required string Path { get; init; }
    public required string DType { get; init; }
    public required int[] Shape { get; init; }
    public float[]? Floats { get; init; }
    public long[]? Integers { get; init; }

    public int Count => Shape.Length == 0 ? 1 : Shape[0];

    /// <summary>Writes float32 values as a C-order .npy (format 1.0), as numpy.save does.</summary>
    public static void Write(string path, ReadOnlySpan<float> values, params int[] shape) =>
        Write(path, "<f4", shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));

    /// <summary>Writes int64 values (labels) as a C-order .npy (format 1.0).</summary>
    public static void Write(string path, ReadOnlySpan<long> values, params int[] shape) =>
        Write(path, "<i8", shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));

    private static void Write(string path, string dtype, int[] shape, ReadOnlySpan<byte> data)
    {
        var dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape);
        var header = $"{{'descr': '{dtype}', 'fortran_order': False, 'shape': ({dims}), }}";
        header = header.PadRight((header.Length + 11 + 63) / 64 * 64 - 11) + "\n"; // 10-byte preamble + header: a multiple of 64
        using var file = File.Create(path);
        file.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0, (byte)(header.Length & 0xFF), (byte)(header.Length >> 8)]);
        file.Write(Encoding.ASCII.GetBytes(header));
        file.Write(data);
    }

    public static NpyFile Read(string path)
    {
        if (!File.Exists(path)) throw new ScalpelException(ErrorCode.Data, $"{path}: data file not found.");
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 10 || bytes[0] != 0x93 || !bytes.AsSpan(1, 5).SequenceEqual("NUMPY"u8))
            throw new ScalpelException(ErrorCode.Data, $"{path}: not a NumPy .npy file.");
        int major = bytes[6];
        int headerLength = major == 1 ? BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8)) : (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8));
        int start = major == 1 ? 10 : 12;
        if (headerLength < 0 || start + headerLength > bytes.Length) throw new ScalpelException(ErrorCode.Data, $"{path}: truncated .npy header.");
        var header = Encoding.Latin1.GetString(bytes, start, headerLength);
        var descr = Descr().Match(header);
        var order = Fortran().Match(header);
        var shape = ShapeRegex().Match(header);
        if (!descr.Success || !shape.Success) throw new ScalpelException(ErrorCode.Data, $"{path}: unreadable .npy header '{header.Trim()}'.");
        if (order.Success && order.Groups[1].Value == "True") throw new ScalpelException(ErrorCode.Data, $"{path}: Fortran-ordered arrays are not supported; save with C order.");
        var dims = shape.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(d => int.Parse(d, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        long count = dims.Aggregate(1L, (a, d) => a * d);
        var dtype = descr.Groups[1].Value;
        var data = bytes.AsSpan(start + headerLength);
        int itemSize = dtype switch { "<f4" or "<i4" => 4, "<f8" or "<i8" => 8, "|u1" or "|i1" => 1, _ => 0 };
        if (itemSize == 0) throw new ScalpelException(ErrorCode.Data, $"{path}: dtype '{dtype}' is not supported (use float32, int32 or int64).");
        if (data.Length != count * itemSize)
            throw new ScalpelException(ErrorCode.Data, $"{path}: holds {data.Length} bytes of data; shape ({string.Join(", ", dims)}) of {dtype} needs {count * itemSize}.");
        float[]? floats = null;
        long[]? ints = null;
        switch (dtype)
        {
            case "<f4": floats = new float[count]; for (int i = 0; i < count; i++) floats[i] = BinaryPrimitives.ReadSingleLittleEndian(data[(4 * i)..]); break;
            case "<f8": floats = new float[count]; for (int i = 0; i < count; i++) floats[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(data[(8 * i)..]); break;
            case "<i4": ints = new long[count]; for (int i = 0; i < count; i++) ints[i] = BinaryPrimitives.ReadInt32LittleEndian(data[(4 * i)..]); break;
            case "<i8": ints = new long[count]; for (int i = 0; i < count; i++) ints[i] = BinaryPrimitives.ReadInt64LittleEndian(data[(8 * i)..]); break;
            case "|u1": ints = new long[count]; for (int i = 0; i < count; i++) ints[i] = data[i]; break;
            case "|i1": ints = new long[count]; for (int i = 0; i < count; i++) ints[i] = (sbyte)data[i]; break;
        }
        return new NpyFile { Path = path, DType = dtype, Shape = dims, Floats = floats, Integers = ints };
    }

    [GeneratedRegex(@"'descr'\s*:\s*'([^']+)'")]
    private static partial Regex Descr();
    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")]
    private static partial Regex Fortran();
    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapeRegex();
}
