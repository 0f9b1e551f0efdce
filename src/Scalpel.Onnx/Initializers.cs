using Google.Protobuf;
using Scalpel.Onnx.Proto;

namespace Scalpel.Onnx;

/// <summary>Reads, makes and replaces float initializers of a model being rewritten.</summary>
public static class Initializers
{
    /// <summary>The current value of an initializer of <paramref name="model"/>.</summary>
    public static Tensor Read(ModelProto model, string name) =>
        TensorReader.ReadFloat(model.Graph.Initializer.First(i => i.Name == name), new OnnxModel(model, null, "rewritten model"));

    public static TensorProto Make(string name, int[] dims, float[] data)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX raw data is little endian");
        var bytes = new byte[data.Length * 4];
        Buffer.BlockCopy(data, 0, bytes, 0, bytes.Length);
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(bytes) };
        t.Dims.AddRange(dims.Select(d => (long)d));
        return t;
    }

    public static void Replace(ModelProto model, TensorProto replacement)
    {
        var list = model.Graph.Initializer;
        int index = list.Select((t, i) => (t, i)).First(p => p.t.Name == replacement.Name).i;
        list[index] = replacement;
    }
}
