using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

/// <summary>Element-wise layers folded into the epilogue of the conv that feeds them.</summary>
public sealed partial class CSharpEmitter
{
    /// <summary>A conv's epilogue, the tensor it adds (a skip connection) if any, the folded layers and the tensor it now writes.</summary>
    private sealed record FusedConv(Epilogue Epilogue, string? Residual, List<Layer> Folded, string Output);

    /// <summary>Per tensor: how many layers read it, the first layer that does, and the index of the layer that writes it.</summary>
    private sealed record TensorUse(Dictionary<string, int> Readers, Dictionary<string, Layer> FirstReader, Dictionary<string, int> Producer);

    private TensorUse? _tensorUse;

    private TensorUse Uses()
    {
        var byInput = new Dictionary<string, Layer>(StringComparer.Ordinal);
        foreach (var layer in _model.Layers)
            foreach (var input in layer.Inputs)
                byInput.TryAdd(input, layer);
        var order = _model.Layers.Select((l, i) => (l, i)).ToDictionary(p => p.l.Output, p => p.i, StringComparer.Ordinal);
        return new TensorUse(_model.ReaderCounts(), byInput, order);
    }

    /// <summary>
    /// Folds into dense conv <paramref name="conv"/> (layer <paramref name="index"/>) the element-wise layers that only
    /// it feeds, so that no separate pass reads and writes its feature map again: a Clip (MobileNet's Relu6), an
    /// element-wise function such as SiLU or HardSwish (EfficientNet, MobileNetV3), then an Add of a tensor computed
    /// before the conv (a ResNet skip connection) followed by a Relu or Clip. Null when none.
    /// </summary>
    private FusedConv? Fuse(ConvLayer conv, int index)
    {
        var use = _tensorUse ??= Uses();
        Layer? SoleReader(string tensor) =>
            tensor != _model.OutputName && use.Readers.GetValueOrDefault(tensor) == 1 && use.FirstReader.TryGetValue(tensor, out var l) ? l : null;

        var epilogue = Epilogue.Of(conv.Activation);
        string output = conv.Output;
        string? residual = null;
        var folded = new List<Layer>();
        if (SoleReader(output) is UnaryLayer { Function: UnaryFunction.Clip } clip && epilogue.Inner.Then(clip.Min, clip.Max) is { } clipped)
        {
            epilogue = Epilogue.Of(clipped);
            folded.Add(clip);
            output = clip.Output;
        }
        if (SoleReader(output) is UnaryLayer gated && Gate.Of(gated) is { } gate)
        {
            epilogue = epilogue with { Gate = gate };
            folded.Add(gated);
            output = gated.Output;
        }
        // A gate is applied after the tile's stores, where the pointwise GEMM has already added a residual.
        if (epilogue.Gate is null && SoleReader(output) is BinaryLayer { Op: BinaryOp.Add } add && add.A.Name is { } a && add.B.Name is { } b && a != b
            && Shape.Size(add.A.Shape) == Shape.Size(add.B.Shape) && Shape.Size(add.OutputShape) == Shape.Size(conv.OutputShape))
        {
            string other = a == output ? b : a;
            // The skip must be ready when the conv runs: the model input or a tensor of an earlier layer.
            if (other == _model.InputName || use.Producer.TryGetValue(other, out var producer) && producer < index)
            {
                residual = other;
                epilogue = epilogue with { Residual = true };
                folded.Add(add);
                output = add.Output;
                if (SoleReader(output) is UnaryLayer { Function: UnaryFunction.Relu or UnaryFunction.Clip } after)
                {
                    epilogue = epilogue with { Outer = after.Function == UnaryFunction.Relu ? Bounds.Of(Activation.Relu) : new Bounds(after.Min, after.Max) };
                    folded.Add(after);
                    output = after.Output;
                }
            }
        }
        if (folded.Count == 0) return null;
        foreach (var layer in folded) _foldedInto[layer] = index;
        return new FusedConv(epilogue, residual, folded, output);
    }
}
