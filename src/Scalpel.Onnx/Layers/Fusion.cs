namespace Scalpel.Onnx.Layers;

/// <summary>
/// Folds a layer into the Dense or Conv layer that feeds it when that producer has no other reader: a constant
/// bias Add into the bias, Relu into the epilogue. (BatchNorms are folded into the ONNX model before analysis.)
/// </summary>
public static class Fusion
{
    public static ModelGraph Apply(ModelGraph model)
    {
        var layers = model.Layers.ToList();
        bool changed = true;
        while (changed)
        {
            changed = false;
            var readers = (model with { Layers = layers }).ReaderCounts();
            var producers = layers.Select((l, i) => (l, i)).ToDictionary(p => p.l.Output, p => p.i, StringComparer.Ordinal);
            foreach (var layer in layers)
            {
                if (layer.Inputs.Length != 1 || !producers.TryGetValue(layer.Inputs[0], out int at)) continue;
                var producer = layers[at];
                if (readers.GetValueOrDefault(producer.Output) != 1 || producer.Output == model.OutputName) continue;
                if (producer is WeightedLayer weighted && Fuse(weighted, layer) is { } fused)
                {
                    layers[at] = fused with { Output = layer.Output };
                    layers.Remove(layer);
                    changed = true;
                    break;
                }
            }
        }
        return model with { Layers = layers };
    }

    /// <summary>The producer with <paramref name="layer"/> folded in, or null when it does not fold.</summary>
    private static WeightedLayer? Fuse(WeightedLayer producer, Layer layer)
    {
        if (producer.Activation != Activation.None) return null;
        int rows = producer.Rows;
        var shape = producer.OutputShape;
        // Dense: a bias over the last axis; Conv: over channels (axis 1).
        bool dense = producer is DenseLayer;
        switch (layer)
        {
            case UnaryLayer { Function: UnaryFunction.Relu }:
                return producer with { Activation = Activation.Relu };
            case BinaryLayer { Op: BinaryOp.Add } add when producer.Bias is null && producer is not DenseLayer { BiasFull: not null }
                && ConstantOf(add) is { } t && t.Data.Length == rows && t.Dims.Length > 0 && t.Dims.Length <= shape.Length
                && (dense ? t.Dims[^1] == rows : t.Dims.Length >= shape.Length - 1 && t.Dims[t.Dims.Length - (shape.Length - 1)] == rows):
                return producer with { Bias = (float[])t.Data.Clone() };
            default:
                return null;
        }
    }

    private static Tensor? ConstantOf(BinaryLayer add) => add.A.Constant ?? add.B.Constant;
}
