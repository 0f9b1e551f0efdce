namespace Scalpel.Onnx.Layers;

/// <summary>How the leading dimension of the input is treated.</summary>
public enum BatchMode
{
    /// <summary>Dimension 0 is the batch (symbolic or 1): shapes hold one sample, Run() loops over samples.</summary>
    PerSample,
    /// <summary>Dimension 0 is a fixed size greater than 1: the whole tensor is one sample.</summary>
    Whole,
}

/// <summary>The analysed model: layers in execution order with concrete shapes, ready to plan, prune or emit.</summary>
public sealed record ModelGraph
{
    public required string Source { get; init; }
    public required long Opset { get; init; }
    public required BatchMode BatchMode { get; init; }
    public required string InputName { get; init; }
    public required int[] InputShape { get; init; }
    public required string OutputName { get; init; }
    public required int[] OutputShape { get; init; }
    public required IReadOnlyList<Layer> Layers { get; init; }
    public required Dictionary<string, int[]> Shapes { get; init; }

    public int InputSize => Shape.Size(InputShape);
    public int OutputSize => Shape.Size(OutputShape);
    public bool SymbolicBatch => BatchMode == BatchMode.PerSample;

    /// <summary>The same graph with the named weighted layers holding other weights (pruned, refit or retrained).</summary>
    public ModelGraph WithWeights(IReadOnlyDictionary<string, LayerWeights> weights) => weights.Count == 0 ? this : this with
    {
        Layers = Layers.Select(l => l is WeightedLayer w && weights.TryGetValue(l.Name, out var lw) ? w.With(lw) : l).ToList(),
    };

    /// <summary>How many layers read each tensor (graph output counted as a reader).</summary>
    public Dictionary<string, int> ReaderCounts()
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal) { [OutputName] = 1 };
        foreach (var layer in Layers)
            foreach (var input in layer.Inputs)
                counts[input] = counts.GetValueOrDefault(input) + 1;
        return counts;
    }
}
