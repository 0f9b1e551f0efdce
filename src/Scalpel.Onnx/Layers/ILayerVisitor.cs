namespace Scalpel.Onnx.Layers;

/// <summary>
/// Work that differs per layer type (a kernel to emit, a training step to build): <see cref="Layer.Accept{T}"/>
/// calls the method for the layer's own type, so a new layer type does not compile until every visitor handles it.
/// </summary>
public interface ILayerVisitor<out T>
{
    T Visit(DenseLayer layer);
    T Visit(ConvLayer layer);
    T Visit(PoolLayer layer);
    T Visit(GlobalPoolLayer layer);
    T Visit(ScaleShiftLayer layer);
    T Visit(BinaryLayer layer);
    T Visit(UnaryLayer layer);
    T Visit(ReshapeLayer layer);
    T Visit(ConcatLayer layer);
    T Visit(SoftmaxLayer layer);
    T Visit(LrnLayer layer);
    T Visit(StridedCopyLayer layer);
    T Visit(GatherLayer layer);
    T Visit(PadLayer layer);
    T Visit(ResizeLayer layer);
}
