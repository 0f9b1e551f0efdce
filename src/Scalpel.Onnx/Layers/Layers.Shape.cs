namespace Scalpel.Onnx.Layers;

/// <summary>
/// A copy of input elements in a new order: output element i (row-major over <see cref="Counts"/>) is input element
/// <see cref="Offset"/> + sum_d index_d * <see cref="Strides"/>[d]. Transpose permutes the strides; Slice, a Split
/// output and a Gather of one constant index (or of evenly spaced ones) start at an offset and step along axes.
/// </summary>
public sealed record StridedCopyLayer : Layer
{
    public StridedCopyLayer(Node node, string input, string output, int[] outputShape) : base(node, [input], output, outputShape) { }
    public override T Accept<T>(ILayerVisitor<T> visitor) => visitor.Visit(this);
    public override string Kind => Operator;
    /// <summary>The ONNX operator it came from: Transpose, Slice, Split or Gather.</summary>
    public required string Operator { get; init; }
    public required int[] InputShape { get; init; }
    public required int[] Counts { get; init; }
    public required int Offset { get; init; }
    public required int[] Strides { get; init; }
    public override string Describe() => $"{Shape.Format(InputShape)} -> {Shape.Format(OutputShape)}";
}

/// <summary>Gather along one axis with constant indices: y[o, k, i] = x[o, Indices[k], i].</summary>
public sealed record GatherLayer : Layer
{
    public GatherLayer(Node node, string input, string output, int[] outputShape) : base(node, [input], output, outputShape) { }
    public override T Accept<T>(ILayerVisitor<T> visitor) => visitor.Visit(this);
    public override string Kind => "Gather";
    public required int Outer { get; init; }
    public required int AxisSize { get; init; }
    public required int Inner { get; init; }
    public required int[] Indices { get; init; }
}

/// <summary>Pad in constant mode: the input placed at <see cref="Begin"/> inside an output filled with <see cref="Value"/>.</summary>
public sealed record PadLayer : Layer
{
    public PadLayer(Node node, string input, string output, int[] outputShape) : base(node, [input], output, outputShape) { }
    public override T Accept<T>(ILayerVisitor<T> visitor) => visitor.Visit(this);
    public override string Kind => "Pad";
    public required int[] InputShape { get; init; }
    public required int[] Begin { get; init; }
    public required float Value { get; init; }
    public override string Describe() => $"[{string.Join(",", Begin)}] value {Value}";
}

/// <summary>
/// Resize or Upsample. Nearest: output index j along axis d reads input index <see cref="Source"/>[d][j]. Linear: along
/// an axis with an <see cref="Upper"/> table it blends Source[d][j] and Upper[d][j] with weight Fraction[d][j] on the upper.
/// </summary>
public sealed record ResizeLayer : Layer
{
    public ResizeLayer(Node node, string input, string output, int[] outputShape) : base(node, [input], output, outputShape) { }
    public override T Accept<T>(ILayerVisitor<T> visitor) => visitor.Visit(this);
    public override string Kind => "Resize";
    public required int[] InputShape { get; init; }
    /// <summary>Per axis, the input index each output index reads (the lower one when linear).</summary>
    public required int[][] Source { get; init; }
    /// <summary>Linear only: per axis, null where the axis is not interpolated, else the upper input index.</summary>
    public int[]?[]? Upper { get; init; }
    /// <summary>Linear only: per interpolated axis, the weight of the upper input index.</summary>
    public float[]?[]? Fraction { get; init; }
    public override string Describe() => $"{Shape.Format(InputShape)} -> {Shape.Format(OutputShape)} {(Upper is null ? "nearest" : "linear")}";
}
