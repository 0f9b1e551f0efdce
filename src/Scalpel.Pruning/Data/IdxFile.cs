using System.Buffers.Binary;
using System.IO.Compression;
using Scalpel.Onnx;

namespace Scalpel.Pruning.Data;

/// <summary>MNIST-style IDX files (optionally gzipped): unsigned-byte images or labels.</summary>
public static class IdxFile
{
    /// <summary>Reads an IDX file of unsigned bytes: its dims and values.</summary>
    public static (int[] Dims, byte[] Values) Read(string path)
    {
        if (!File.Exists(path)) throw new ScalpelException(ErrorCode.Data, $"{path}: IDX file not found.");
        using var file = File.OpenRead(path);
        using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
        Span<byte> header = stackalloc byte[4];
        stream.ReadExactly(header);
        if (header[0] != 0 || header[1] != 0 || header[2] != 0x08)
            throw new ScalpelException(ErrorCode.Data, $"{path}: not an IDX file of unsigned bytes.");
        var dims = new int[header[3]];
        for (int i = 0; i < dims.Length; i++)
        {
            stream.ReadExactly(header);
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(header);
        }
        var values = new byte[dims.Aggregate(1L, (a, d) => a * d)];
        stream.ReadExactly(values);
        return (dims, values);
    }

    /// <summary>Images scaled to [0, 1] as float32, [count, rows * cols].</summary>
    public static float[] ReadImages(string path, out int count, out int pixels)
    {
        var (dims, values) = Read(path);
        if (dims.Length != 3) throw new ScalpelException(ErrorCode.Data, $"{path}: expected [count, rows, cols] images, got {dims.Length} dims.");
        count = dims[0];
        pixels = dims[1] * dims[2];
        var result = new float[values.Length];
        for (int i = 0; i < values.Length; i++) result[i] = values[i] / 255f;
        return result;
    }

    public static int[] ReadLabels(string path)
    {
        var (dims, values) = Read(path);
        if (dims.Length != 1) throw new ScalpelException(ErrorCode.Data, $"{path}: expected a vector of labels.");
        return values.Select(v => (int)v).ToArray();
    }
}
