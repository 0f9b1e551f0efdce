using Google.Protobuf;
using Scalpel.Onnx;
using Scalpel.Onnx.Proto;

namespace Scalpel.Pruning.Methods;

/// <summary>Reads, slices and replaces float initializers of a model being rewritten.</summary>
public static class TensorSlicing
{
    public static TensorProto Slice(Tensor tensor, int axis, IReadOnlyList<int> keep, int block = 1)
    {
        var dims = tensor.Dims;
        int outer = Shape.Size(dims, 0, axis), inner = Shape.Size(dims, axis + 1, dims.Length);
        int axisSize = dims[axis];
        var newDims = (int[])dims.Clone();
        newDims[axis] = keep.Count * block;
        var data = new float[Shape.Size(newDims)];
        int at = 0;
        for (int o = 0; o < outer; o++)
            foreach (var k in keep)
            {
                tensor.Data.AsSpan((o * axisSize + k * block) * inner, block * inner).CopyTo(data.AsSpan(at));
                at += block * inner;
            }
        return Make(tensor.Name, newDims, data);
    }

    /// <summary>The current value of an initializer of <paramref name="model"/>.</summary>
    public static Tensor Read(ModelProto model, string name) =>
        TensorReader.ReadFloat(model.Graph.Initializer.First(i => i.Name == name), new OnnxModel(model, null, "pruned model"));

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
