using Scalpel.Onnx;
using Scalpel.Onnx.Proto;

namespace Scalpel.Pruning.Methods;

/// <summary>Slices float initializers along an axis (the channels node pruning keeps).</summary>
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
        return Initializers.Make(tensor.Name, newDims, data);
    }
}
