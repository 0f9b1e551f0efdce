namespace Scalpel.Onnx.Layers;

/// <summary>
/// Folds a layer into the Dense or Conv layer that feeds it when that producer has no other reader:
/// BatchNorm into the weights, a constant bias Add into the bias, Relu into the epilogue.
/// </summary>
public static class Fusion
{
    public static void Apply(ModelGraph model)
    {
        bool changed = true;
        while (changed)
        {
            changed = false;
            var readers = model.ReaderCounts();
            var producers = model.Layers.ToDictionary(l => l.Output, StringComparer.Ordinal);
            foreach (var layer in model.Layers)
            {
                if (layer.Inputs.Length != 1 || !producers.TryGetValue(layer.Inputs[0], out var producer)) continue;
                if (readers.GetValueOrDefault(producer.Output) != 1 || producer.Output == model.OutputName) continue;
                if (TryFuse(producer, layer))
                {
                    producer.Output = layer.Output;
                    model.Layers.Remove(layer);
                    changed = true;
                    break;
                }
            }
        }
    }

    private static bool TryFuse(Layer producer, Layer layer)
    {
        switch (producer, layer)
        {
            case (DenseLayer d, UnaryLayer { Function: UnaryFunction.Relu }) when d.Activation == Activation.None:
                d.Activation = Activation.Relu;
                return true;
            case (ConvLayer c, UnaryLayer { Function: UnaryFunction.Relu }) when c.Activation == Activation.None:
                c.Activation = Activation.Relu;
                return true;
            case (DenseLayer d, ScaleShiftLayer bn) when d.Activation == Activation.None && d.BiasFull is null && d.OutputShape.Length == 2 && bn.C == d.N:
                d.Weight = ScaleRows(d.Weight, bn.Scale, d.K);
                d.WeightMatchesInitializer = false;
                d.Bias = ShiftBias(d.Bias, bn, d.N);
                return true;
            case (ConvLayer c, ScaleShiftLayer bn) when c.Activation == Activation.None && bn.C == c.M:
                c.Weight = ScaleRows(c.Weight, bn.Scale, c.Weight.Length / c.M);
                c.WeightMatchesInitializer = false;
                c.Bias = ShiftBias(c.Bias, bn, c.M);
                return true;
            case (DenseLayer d, BinaryLayer { Op: BinaryOp.Add } add) when d.Activation == Activation.None && d.Bias is null && d.BiasFull is null
                && ConstantOf(add) is { } t && t.Data.Length == d.N && t.Dims.Length <= d.OutputShape.Length && t.Dims.Length > 0 && t.Dims[^1] == d.N:
                d.Bias = (float[])t.Data.Clone();
                return true;
            case (ConvLayer c, BinaryLayer { Op: BinaryOp.Add } add) when c.Activation == Activation.None && c.Bias is null
                && ConstantOf(add) is { } t && t.Data.Length == c.M && t.Dims.Length >= c.OutputShape.Length - 1 && t.Dims.Length <= c.OutputShape.Length
                && t.Dims[t.Dims.Length - (c.OutputShape.Length - 1)] == c.M:
                c.Bias = (float[])t.Data.Clone();
                return true;
            default:
                return false;
        }
    }

    private static Tensor? ConstantOf(BinaryLayer add) => add.A.Constant ?? add.B.Constant;

    private static float[] ScaleRows(float[] weight, float[] scale, int rowLength)
    {
        var result = new float[weight.Length];
        for (int i = 0; i < weight.Length; i++) result[i] = weight[i] * scale[i / rowLength];
        return result;
    }

    private static float[] ShiftBias(float[]? bias, ScaleShiftLayer bn, int n)
    {
        var result = new float[n];
        for (int i = 0; i < n; i++) result[i] = (bias?[i] ?? 0f) * bn.Scale[i] + bn.Shift[i];
        return result;
    }
}
