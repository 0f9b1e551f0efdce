using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Scalpel.CodeGen;

/// <summary>
/// The weight file the generated code loads. Layout (little endian):
/// magic "SCALPELW" | u32 version | u32 section count | u64 payload bytes | 32-byte SHA-256 of the payload |
/// per section: u64 offset, u64 float count | zero padding to 64 | sections, each starting on a 64-byte boundary.
/// </summary>
public static class WeightBlob
{
    public const int Version = 1;
    public const int Alignment = 64;
    public static ReadOnlySpan<byte> Magic => "SCALPELW"u8;
    public const int FixedHeaderSize = 8 + 4 + 4 + 8 + 32;

    public static byte[] Write(IReadOnlyList<float[]> sections)
    {
        int headerSize = Align(FixedHeaderSize + 16 * sections.Count);
        var offsets = new long[sections.Count];
        long end = headerSize;
        for (int i = 0; i < sections.Count; i++)
        {
            offsets[i] = end;
            end = Align(end + 4L * sections[i].Length);
        }
        var blob = new byte[end];
        Magic.CopyTo(blob);
        BinaryPrimitives.WriteInt32LittleEndian(blob.AsSpan(8), Version);
        BinaryPrimitives.WriteInt32LittleEndian(blob.AsSpan(12), sections.Count);
        BinaryPrimitives.WriteInt64LittleEndian(blob.AsSpan(16), end - headerSize);
        for (int i = 0; i < sections.Count; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(blob.AsSpan(FixedHeaderSize + 16 * i), offsets[i]);
            BinaryPrimitives.WriteInt64LittleEndian(blob.AsSpan(FixedHeaderSize + 16 * i + 8), sections[i].Length);
            var target = blob.AsSpan((int)offsets[i], 4 * sections[i].Length);
            for (int j = 0; j < sections[i].Length; j++)
                BinaryPrimitives.WriteSingleLittleEndian(target[(4 * j)..], sections[i][j]);
        }
        SHA256.HashData(blob.AsSpan(headerSize), blob.AsSpan(24, 32));
        return blob;
    }

    private static int Align(int n) => (n + Alignment - 1) / Alignment * Alignment;
    private static long Align(long n) => (n + Alignment - 1) / Alignment * Alignment;
}
