using Scalpel.Onnx.Proto;

namespace Scalpel.Onnx;

/// <summary>
/// Folds each BatchNormalization that directly follows a Conv or Gemm (its only reader) into that layer's
/// weight and bias initializers, and removes it. The model computes the same function (inference-mode
/// BatchNorm is affine), and every Conv/Gemm layer's parameters are then its own initializers: what
/// pruning and retraining rewrite. The one BatchNorm folding: analysis folds first, the pipeline folds the
/// model it scores and exports.
/// </summary>
public static class BatchNormFolding
{
    /// <summary>The model with its foldable BatchNorms folded (the same model when there are none).</summary>
    public static OnnxModel Apply(OnnxModel model) =>
        model.Proto.Graph.Node.Any(n => n.OpType == "BatchNormalization") ? new OnnxModel(Apply(model.Proto), model.BaseDirectory, model.Source) : model;

    public static ModelProto Apply(ModelProto source)
    {
        var model = source.Clone();
        var graph = model.Graph;
        bool folded = true;
        while (folded)
        {
            folded = false;
            foreach (var bn in graph.Node.Where(n => n.OpType == "BatchNormalization").ToList())
                if (TryFold(model, bn)) { folded = true; break; }
        }
        return model;
    }

    private static bool TryFold(ModelProto model, NodeProto bn)
    {
        var graph = model.Graph;
        var inits = graph.Initializer.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        // BatchNorm parameters may be initializers or Identity copies of them (exporters share equal tensors).
        string? Source(string name) => inits.Contains(name) ? name
            : graph.Node.FirstOrDefault(n => n.OpType == "Identity" && n.Output.Count == 1 && n.Output[0] == name) is { Input.Count: 1 } id && inits.Contains(id.Input[0]) ? id.Input[0] : null;
        // The model is untrusted and not yet checked: anything unusual is left for analysis, which names the node.
        if (bn.Input.Count < 5 || bn.Output.Count < 1 || bn.Output[0].Length == 0 || bn.Input.Skip(1).Take(4).Any(n => Source(n) is null)) return false;
        var producer = graph.Node.FirstOrDefault(n => n.Output.Count > 0 && n.Output[0] == bn.Input[0]);
        if (producer is null || producer.OpType is not ("Conv" or "Gemm") || Uses(graph, producer.Output[0]) != 1 || graph.Output.Any(o => o.Name == producer.Output[0])) return false;
        float eps, biasScale;
        bool transB;
        try
        {
            // Read as analysis reads them: an attribute declared with the wrong type is left for analysis to name.
            var (norm, product) = (new Node(bn, 0), new Node(producer, 0));
            if (norm.Int("training_mode", 0) != 0) return false;
            eps = norm.Float("epsilon", 1e-5f);
            (transB, biasScale) = producer.OpType == "Gemm" ? (product.Int("transB", 0) != 0, product.Float("beta", 1f)) : (false, 1f);
        }
        catch (ArgumentException)
        {
            return false;
        }
        if (producer.Input.Count < 2 || !inits.Contains(producer.Input[1]) || Uses(graph, producer.Input[1]) != 1) return false;
        if (producer.Input.Count > 2 && (!inits.Contains(producer.Input[2]) || Uses(graph, producer.Input[2]) != 1)) return false;

        var gamma = Initializers.Read(model, Source(bn.Input[1])!).Data;
        var beta = Initializers.Read(model, Source(bn.Input[2])!).Data;
        var mean = Initializers.Read(model, Source(bn.Input[3])!).Data;
        var variance = Initializers.Read(model, Source(bn.Input[4])!).Data;
        int channels = gamma.Length;
        if (channels == 0 || beta.Length != channels || mean.Length != channels || variance.Length != channels) return false;
        var scale = new float[channels];
        for (int c = 0; c < channels; c++) scale[c] = gamma[c] / MathF.Sqrt(variance[c] + eps);

        var w = Initializers.Read(model, producer.Input[1]);
        var weight = (float[])w.Data.Clone();
        if (producer.OpType == "Conv")
        {
            if (w.Dims.Length < 2 || w.Dims[0] != channels || weight.Length % channels != 0) return false;
            int per = weight.Length / channels;
            for (int i = 0; i < weight.Length; i++) weight[i] *= scale[i / per];
        }
        else
        {
            // Gemm: B is [K, N], or [N, K] with transB; the BatchNorm runs over N.
            if (w.Dims.Length != 2 || w.Dims[transB ? 0 : 1] != channels) return false;
            for (int i = 0; i < weight.Length; i++) weight[i] *= scale[transB ? i / w.Dims[1] : i % channels];
            if (producer.Input.Count > 2 && Initializers.Read(model, producer.Input[2]).Data.Length != channels) return false; // a full [M, N] C
        }
        var bias = producer.Input.Count > 2 ? Initializers.Read(model, producer.Input[2]).Data : new float[channels];
        if (bias.Length != channels) return false;
        var folded = new float[channels];
        for (int c = 0; c < channels; c++) folded[c] = (biasScale * bias[c] - mean[c]) * scale[c] + beta[c];

        Initializers.Replace(model, Initializers.Make(w.Name, w.Dims, weight));
        if (producer.Input.Count > 2) Initializers.Replace(model, Initializers.Make(producer.Input[2], [channels], folded));
        else
        {
            string name = Unique(graph, producer.Name + "_folded_bias");
            graph.Initializer.Add(Initializers.Make(name, [channels], folded));
            producer.Input.Add(name);
        }
        if (producer.OpType == "Gemm")
        {
            var betaAttribute = producer.Attribute.FirstOrDefault(a => a.Name == "beta");
            if (betaAttribute is not null) betaAttribute.F = 1f;
        }
        producer.Output[0] = bn.Output[0];
        graph.Node.Remove(bn);
        RemoveUnused(graph, bn.Input.Skip(1).Take(4));
        return true;
    }

    /// <summary>Drops Identity nodes and initializers that nothing reads any more.</summary>
    private static void RemoveUnused(GraphProto graph, IEnumerable<string> names)
    {
        foreach (var name in names.Distinct().ToList())
        {
            if (Uses(graph, name) > 0) continue;
            if (graph.Node.FirstOrDefault(n => n.OpType == "Identity" && n.Output.Count == 1 && n.Output[0] == name) is { Input.Count: 1 } id)
            {
                graph.Node.Remove(id);
                RemoveUnused(graph, [id.Input[0]]);
            }
            else if (graph.Initializer.FirstOrDefault(i => i.Name == name) is { } init) graph.Initializer.Remove(init);
        }
    }

    private static int Uses(GraphProto graph, string name) => graph.Node.Sum(n => n.Input.Count(i => i == name)) + graph.Output.Count(o => o.Name == name);

    private static string Unique(GraphProto graph, string name)
    {
        var taken = graph.Initializer.Select(i => i.Name).Concat(graph.Node.SelectMany(n => n.Output)).ToHashSet(StringComparer.Ordinal);
        string candidate = name;
        for (int i = 1; taken.Contains(candidate); i++) candidate = $"{name}_{i}";
        return candidate;
    }
}
