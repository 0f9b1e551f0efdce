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

    /// <summary>Largest header accepted (numpy itself refuses headers over 10,000 bytes by default).</summary>
    public const int MaxHeaderLength = 65_536;

    /// <summary>Most values loaded from one file (1 GiB of float32); rows past what the caller uses are never read.</summary>
    public const long MaxLoadedValues = 1L << 28;

    /// <summary>
    /// Reads the array, or only its first <paramref name="maxRows"/> rows (the rest of the file is not read, only
    /// its size checked). <see cref="Shape"/> is the declared shape; <see cref="Rows"/> says how many rows were loaded.
    /// </summary>
    public static NpyFile Read(string path, int maxRows = int.MaxValue)
    {
        if (!File.Exists(path)) throw new ScalpelException(ErrorCode.Data, $"{path}: data file not found.");
        SafeFile.RequireRegular(path, ErrorCode.Data, path);
        ScalpelException Bad(string what) => new(ErrorCode.Data, $"{path}: {what}");
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        Span<byte> preamble = stackalloc byte[12];
        if (file.ReadAtLeast(preamble[..10], 10, throwOnEndOfStream: false) < 10 || preamble[0] != 0x93 || !preamble.Slice(1, 5).SequenceEqual("NUMPY"u8))
            throw Bad("not a NumPy .npy file.");
        int major = preamble[6];
        if (major is < 1 or > 3) throw Bad($".npy format version {major}.{preamble[7]} is not supported (1.0 to 3.0).");
        long headerLength = BinaryPrimitives.ReadUInt16LittleEndian(preamble[8..]);
        int start = 10;
        if (major > 1)
        {
            if (file.ReadAtLeast(preamble[10..12], 2, throwOnEndOfStream: false) < 2) throw Bad("truncated .npy header.");
            headerLength = BinaryPrimitives.ReadUInt32LittleEndian(preamble[8..]);
            start = 12;
        }
        if (headerLength > MaxHeaderLength) throw Bad($".npy header of {headerLength} bytes; at most {MaxHeaderLength} are accepted.");
        if (start + headerLength > file.Length) throw Bad("truncated .npy header.");
        var headerBytes = new byte[headerLength];
        file.ReadExactly(headerBytes);
        var header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(headerBytes);
        var (dtype, fortran, dims) = ParseHeader(header, Bad);
        if (fortran) throw Bad("Fortran-ordered arrays are not supported; save with C order.");
        int itemSize = dtype switch { "<f4" or "<i4" => 4, "<f8" or "<i8" => 8, "|u1" or "|i1" => 1, _ => 0 };
        if (itemSize == 0) throw Bad($"dtype '{dtype}' is not supported (use float32, int32 or int64).");
        // Sizes in double first: a hostile shape may overflow any integer type.
        double declared = dims.Aggregate(1.0, (a, d) => a * d) * itemSize;
        long dataBytes = file.Length - start - headerLength;
        if (declared != dataBytes)
            throw Bad($"holds {dataBytes} bytes of data; shape ({string.Join(", ", dims)}) of {dtype} needs {declared:0}.");
        long rowValues = dims.Length == 0 ? 1 : dims.Skip(1).Aggregate(1L, (a, d) => a * d);
        long rows = dims.Length == 0 ? 1 : Math.Min(dims[0], Math.Max(0, maxRows));
        long count = rows * rowValues;
        if (count > MaxLoadedValues)
            throw Bad($"{rows} rows of {rowValues} values are more than the {MaxLoadedValues} values Scalpel.Build loads at once; use fewer samples.");
        var bytes = new byte[count * itemSize];
        file.ReadExactly(bytes);
        var data = bytes.AsSpan();
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
        return new NpyFile { Path = path, DType = dtype, Shape = dims, Rows = (int)rows, Floats = floats, Integers = ints };
    }

    /// <summary>Rows loaded (the first ones): the declared count, or fewer when the caller asked for fewer.</summary>
    public int Rows { get; init; }

    /// <summary>The header dict, strictly: exactly the keys descr, fortran_order and shape; shape values are whole numbers up to int.MaxValue.</summary>
    private static (string DType, bool Fortran, int[] Shape) ParseHeader(string header, Func<string, ScalpelException> bad)
    {
        var m = HeaderRegex().Match(header);
        if (!m.Success) throw bad($"unreadable .npy header '{Printable(header)}'.");
        string? dtype = null, shape = null;
        bool? fortran = null;
        foreach (Capture entry in m.Groups["entry"].Captures)
        {
            var e = EntryRegex().Match(entry.Value);
            switch (e.Groups["key"].Value)
            {
                case "descr" when dtype is null && e.Groups["str"].Success: dtype = e.Groups["str"].Value; break;
                case "fortran_order" when fortran is null && e.Groups["bool"].Success: fortran = e.Groups["bool"].Value == "True"; break;
                case "shape" when shape is null && e.Groups["tuple"].Success: shape = e.Groups["tuple"].Value; break;
                default: throw bad($".npy header entry '{Printable(entry.Value)}' is unexpected or repeated.");
            }
        }
        if (dtype is null || fortran is null || shape is null) throw bad($".npy header '{Printable(header)}' lacks descr, fortran_order or shape.");
        var parts = shape.Split(',', StringSplitOptions.TrimEntries);
        if (parts[^1].Length == 0) parts = parts[..^1]; // (5,) and ()
        var dims = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            var digits = parts[i].EndsWith('L') ? parts[i][..^1] : parts[i]; // Python 2 wrote longs as 200L
            if (!int.TryParse(digits, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out dims[i]))
                throw bad($".npy shape value '{Printable(parts[i])}' is not a whole number up to {int.MaxValue}.");
        }
        return (dtype, fortran.Value, dims);
    }

    private static string Printable(string s) => new(s.Trim().Take(200).Select(c => c is >= ' ' and <= '~' ? c : '?').ToArray());

    [GeneratedRegex(@"^\s*\{\s*(?:(?<entry>'[a-z_]+'\s*:\s*(?:'[^']*'|True|False|\([0-9L,\s]*\)))\s*(?:,\s*|(?=\})))*\}\s*\z")]
    private static partial Regex HeaderRegex();

    [GeneratedRegex(@"^'(?<key>[a-z_]+)'\s*:\s*(?:'(?<str>[^']*)'|(?<bool>True|False)|\((?<tuple>[0-9L,\s]*)\))\z")]
    private static partial Regex EntryRegex();


}
