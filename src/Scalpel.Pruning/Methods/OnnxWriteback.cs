using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;

namespace Scalpel.Pruning.Methods;

/// <summary>Writes a Dense or Conv layer's (pruned, retrained) weights and bias back into the ONNX initializers they came from.</summary>
public static class OnnxWriteback
{
    /// <summary>Whether the layer's weight is a Gemm/MatMul/Conv initializer used by that node alone, so it can be rewritten.</summary>
    public static bool CanRewrite(ModelProto model, WeightedLayer layer)
    {
        var name = layer.Node.Inputs[1];
        if (model.Graph.Initializer.All(i => i.Name != name)) return false;
        return model.Graph.Node.Count(n => n.Input.Contains(name)) == 1;
    }

    public static void Write(ModelProto model, WeightedLayer layer, float[] weight)
    {
        var init = model.Graph.Initializer.First(i => i.Name == layer.Node.Inputs[1]);
        Initializers.Replace(model, Initializers.Make(init.Name, init.Dims.Select(d => (int)d).ToArray(), layer.InitializerValues(weight)));
    }

    /// <summary>
    /// The initializer holding a Dense or Conv layer's bias and the factor the layer applied to it (Gemm's
    /// beta): the node's own bias input, or the constant of a bias Add fused into it. Null when the bias
    /// cannot be rewritten alone (absent, shared, or a full [M, N] Gemm C).
    /// </summary>
    public static (string Name, float Scale)? BiasSource(ModelProto model, WeightedLayer layer)
    {
        var (node, n) = (layer.Node, layer.Rows);
        if (layer.Bias is null) return null;
        var graph = model.Graph;
        bool Rewritable(string name) => graph.Initializer.Any(i => i.Name == name && i.Dims.Aggregate(1L, (a, b) => a * b) == n)
            && graph.Node.Sum(x => x.Input.Count(i => i == name)) == 1;
        if (node.Input(2) is { } own)
            return Rewritable(own) && (node.OpType != "Gemm" || node.Float("beta", 1f) != 0f) ? (own, node.OpType == "Gemm" ? node.Float("beta", 1f) : 1f) : null;
        // A bias Add fused into the layer: the only reader of the layer's raw output.
        var readers = graph.Node.Where(x => x.Input.Contains(node.Outputs[0])).ToList();
        if (readers is not [{ OpType: "Add" } add]) return null;
        var constant = add.Input.FirstOrDefault(i => i != node.Outputs[0]);
        return constant is not null && Rewritable(constant) ? (constant, 1f) : null;
    }

    public static void WriteBias(ModelProto model, WeightedLayer layer, float[] bias)
    {
        var (name, scale) = BiasSource(model, layer) ?? throw new InvalidOperationException($"{layer.Name}: its bias has no initializer of its own.");
        var init = model.Graph.Initializer.First(i => i.Name == name);
        Initializers.Replace(model, Initializers.Make(name, init.Dims.Select(d => (int)d).ToArray(), bias.Select(b => b / scale).ToArray()));
    }
}
