using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

/// <summary>Element-wise layers folded into the epilogue of the conv that feeds them.</summary>
public sealed partial class CSharpEmitter
{
    /// <summary>
    /// Folds into each dense conv the element-wise layers that only it feeds, so that no separate pass reads and
    /// writes its feature map again: a Clip (MobileNet's Relu6), an element-wise function such as SiLU or HardSwish
    /// (EfficientNet, MobileNetV3), then an Add of a tensor computed before the conv (a ResNet skip connection)
    /// followed by a Relu or Clip.
    /// </summary>
    private void FuseEpilogues()
    {
        var readers = _model.ReaderCounts();
        var order = _model.Layers.Select((l, i) => (l, i)).ToDictionary(p => p.l.Output, p => p.i, StringComparer.Ordinal);
        var byInput = new Dictionary<string, Layer>(StringComparer.Ordinal);
        foreach (var layer in _model.Layers)
            foreach (var input in layer.Inputs)
                byInput.TryAdd(input, layer);
        Layer? SoleReader(string tensor) =>
            tensor != _model.OutputName && readers.GetValueOrDefault(tensor) == 1 && byInput.TryGetValue(tensor, out var l) ? l : null;

        for (int index = 0; index < _model.Layers.Count; index++)
        {
            if (_model.Layers[index] is not ConvLayer { Format: WeightFormat.Dense } conv) continue;
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
                if (other == _model.InputName || order.TryGetValue(other, out var producer) && producer < index)
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
            if (folded.Count == 0) continue;
            _fused[conv] = new FusedConv(epilogue, residual, folded, output);
            foreach (var layer in folded) _foldedInto[layer] = conv;
        }
    }
}
