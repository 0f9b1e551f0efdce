using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Scalpel.CodeGen;

/// <summary>
/// The weight file the generated code loads. Layout (little endian):
/// magic "SCALPELW" | u32 version | u32 section count | u64 payload bytes | 32-byte SHA-256 of the payload |
/// per section: u64 offset, u64 element count, u32 element type, u32 reserved | zero padding to 64 |
/// sections, each starting on a 64-byte boundary.
/// </summary>
public static class WeightBlob
{
    public const int Version = 1;
    public const int Alignment = 64;
    public static ReadOnlySpan<byte> Magic => "SCALPELW"u8;
    public const int FixedHeaderSize = 8 + 4 + 4 + 8 + 32;
    public const int EntrySize = 24;

    /// <summary>Element type codes stored per section.</summary>
    public enum ElementType { Float32 = 1, UInt8 = 2, UInt16 = 3, Int32 = 4 }

    public static ElementType TypeOf(Array data) => data switch
    {
        float[] => ElementType.Float32,
        byte[] => ElementType.UInt8,
        ushort[] => ElementType.UInt16,
        int[] => ElementType.Int32,
        _ => throw new ArgumentException($"unsupported section type {data.GetType()}"),
    };

    public static int SizeOf(ElementType type) => type switch { ElementType.UInt8 => 1, ElementType.UInt16 => 2, _ => 4 };

    public static string CSharpName(ElementType type) => type switch
    {
        ElementType.Float32 => "float", ElementType.UInt8 => "byte", ElementType.UInt16 => "ushort", _ => "int",
    };

    public static byte[] Write(IReadOnlyList<Array> sections)
    {
        int headerSize = (int)Align(FixedHeaderSize + EntrySize * sections.Count);
        var offsets = new long[sections.Count];
        long end = headerSize;
        for (int i = 0; i < sections.Count; i++)
        {
            offsets[i] = end;
            end = Align(end + (long)SizeOf(TypeOf(sections[i])) * sections[i].Length);
        }
        var blob = new byte[end];
        Magic.CopyTo(blob);
        BinaryPrimitives.WriteInt32LittleEndian(blob.AsSpan(8), Version);
        BinaryPrimitives.WriteInt32LittleEndian(blob.AsSpan(12), sections.Count);
        BinaryPrimitives.WriteInt64LittleEndian(blob.AsSpan(16), end - headerSize);
        for (int i = 0; i < sections.Count; i++)
        {
            var type = TypeOf(sections[i]);
            var entry = blob.AsSpan(FixedHeaderSize + EntrySize * i);
            BinaryPrimitives.WriteInt64LittleEndian(entry, offsets[i]);
            BinaryPrimitives.WriteInt64LittleEndian(entry[8..], sections[i].Length);
            BinaryPrimitives.WriteInt32LittleEndian(entry[16..], (int)type);
            var target = blob.AsSpan((int)offsets[i], SizeOf(type) * sections[i].Length);
            switch (sections[i])
            {
                case float[] f: for (int j = 0; j < f.Length; j++) BinaryPrimitives.WriteSingleLittleEndian(target[(4 * j)..], f[j]); break;
                case byte[] b: b.CopyTo(target); break;
                case ushort[] u: for (int j = 0; j < u.Length; j++) BinaryPrimitives.WriteUInt16LittleEndian(target[(2 * j)..], u[j]); break;
                case int[] n: for (int j = 0; j < n.Length; j++) BinaryPrimitives.WriteInt32LittleEndian(target[(4 * j)..], n[j]); break;
            }
        }
        SHA256.HashData(blob.AsSpan(headerSize), blob.AsSpan(24, 32));
        return blob;
    }

    private static long Align(long n) => (n + Alignment - 1) / Alignment * Alignment;
}
