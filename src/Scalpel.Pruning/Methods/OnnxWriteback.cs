using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;

namespace Scalpel.Pruning.Methods;

/// <summary>Writes a Dense layer's (pruned) weights back into the ONNX initializer it came from.</summary>
public static class OnnxWriteback
{
    /// <summary>Whether the layer's weight is a Gemm/MatMul/Conv initializer used by that node alone, so it can be rewritten.</summary>
    public static bool CanRewrite(ModelProto model, Layer layer)
    {
        bool matches = layer switch { DenseLayer d => d.WeightMatchesInitializer && d.Node.OpType is "Gemm" or "MatMul", ConvLayer c => c.WeightMatchesInitializer, _ => false };
        if (!matches) return false;
        var name = layer.Node.Inputs[1];
        if (model.Graph.Initializer.All(i => i.Name != name)) return false;
        return model.Graph.Node.Count(n => n.Input.Contains(name)) == 1;
    }

    public static void Write(ModelProto model, Layer layer, float[] weight)
    {
        if (layer is ConvLayer conv)
        {
            // Conv weights are [M, C, KH, KW] in the layer and in the initializer alike.
            var w = model.Graph.Initializer.First(i => i.Name == conv.Node.Inputs[1]);
            TensorSlicing.Replace(model, TensorSlicing.Make(w.Name, w.Dims.Select(d => (int)d).ToArray(), weight));
            return;
        }
        WriteDense(model, (DenseLayer)layer, weight);
    }

    private static void WriteDense(ModelProto model, DenseLayer layer, float[] weight)
    {
        var node = layer.Node;
        var name = node.Inputs[1];
        var init = model.Graph.Initializer.First(i => i.Name == name);
        bool transB = node.OpType == "Gemm" && node.Int("transB", 0) != 0;
        float alpha = node.OpType == "Gemm" ? node.Float("alpha", 1f) : 1f;
        int n = layer.N, k = layer.K;
        // Layer weights are [N, K] (alpha folded in); the initializer is B = [K, N], or [N, K] with transB.
        var values = new float[n * k];
        for (int r = 0; r < n; r++)
            for (int c = 0; c < k; c++)
                values[transB ? r * k + c : c * n + r] = weight[r * k + c] / alpha;
        TensorSlicing.Replace(model, TensorSlicing.Make(init.Name, init.Dims.Select(d => (int)d).ToArray(), values));
    }
}
