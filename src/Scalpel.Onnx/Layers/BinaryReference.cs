namespace Scalpel.Onnx.Layers;

/// <summary>Elementwise arithmetic with broadcasting, for folding constant subgraphs.</summary>
public static class BinaryReference
{
    public static float[] Compute(BinaryOp op, Tensor a, Tensor b, int[] shape)
    {
        var result = new float[Shape.Size(shape)];
        var sa = Shape.BroadcastStrides(a.Dims, shape);
        var sb = Shape.BroadcastStrides(b.Dims, shape);
        var index = new int[shape.Length];
        for (int i = 0; i < result.Length; i++)
        {
            int ia = 0, ib = 0;
            for (int d = 0; d < shape.Length; d++) { ia += index[d] * sa[d]; ib += index[d] * sb[d]; }
            float x = a.Data[ia], y = b.Data[ib];
            result[i] = op switch { BinaryOp.Add => x + y, BinaryOp.Sub => x - y, _ => x * y };
            for (int d = shape.Length - 1; d >= 0 && ++index[d] == shape[d]; d--) index[d] = 0;
        }
        return result;
    }
}
