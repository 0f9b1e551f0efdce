using System.Collections.Immutable;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;
using Scalpel.Pruning.Methods;

namespace Scalpel.Pruning;

/// <summary>
/// What weight pruning and retraining decided over one baseline (the analysed model after node pruning, and its ONNX
/// model): the weights, bias and format of each weighted layer they changed. The graph the code generator emits and
/// the ONNX model ONNX Runtime scores are both derived from it, so they cannot drift apart; undoing a step is keeping
/// the previous state.
/// </summary>
public sealed record PruneState
{
    private PruneState(ModelGraph baseline, ModelProto baselineOnnx, ImmutableDictionary<string, LayerWeights> changes) =>
        (Baseline, BaselineOnnx, Changes) = (baseline, baselineOnnx, changes);

    public ModelGraph Baseline { get; }
    public ModelProto BaselineOnnx { get; }
    /// <summary>Changed layers by name; the others keep the baseline's weights.</summary>
    public ImmutableDictionary<string, LayerWeights> Changes { get; private init; }

    /// <summary>Nothing changed yet. <paramref name="onnx"/> must be the model <paramref name="baseline"/> was analysed from.</summary>
    public static PruneState Of(ModelGraph baseline, ModelProto onnx) =>
        new(baseline, onnx, ImmutableDictionary.Create<string, LayerWeights>(StringComparer.Ordinal));

    public PruneState With(string layer, LayerWeights weights) => this with { Changes = Changes.SetItem(layer, weights) };

    public PruneState With(IEnumerable<KeyValuePair<string, LayerWeights>> changes) => this with { Changes = Changes.SetItems(changes) };

    public LayerWeights WeightsOf(WeightedLayer layer) => Changes.GetValueOrDefault(layer.Name) ?? layer.Weights;

    /// <summary>The analysed graph with every change applied: what the code generator emits.</summary>
    public ModelGraph Model() => Baseline.WithWeights(Changes);

    /// <summary>The ONNX model with every change written into its initializers: what ONNX Runtime scores and the run exports.</summary>
    public ModelProto Onnx()
    {
        var proto = BaselineOnnx.Clone();
        foreach (var layer in Baseline.Layers.OfType<WeightedLayer>())
        {
            if (!Changes.TryGetValue(layer.Name, out var w)) continue;
            // Only what changed: a layer whose bias alone trained may have a weight that is not its own initializer.
            if (!ReferenceEquals(w.Weight, layer.Weight)) OnnxWriteback.Write(proto, layer, w.Weight);
            if (w.Bias is not null && !ReferenceEquals(w.Bias, layer.Bias)) OnnxWriteback.WriteBias(proto, layer, w.Bias);
        }
        return proto;
    }
}
