namespace Scalpel.Onnx.Layers;

/// <summary>How a layer's weights are stored in generated code.</summary>
public enum WeightFormat
{
    /// <summary>Every weight, row-major.</summary>
    Dense,
    /// <summary>Compressed sparse rows: one column index per nonzero (traditional pruning).</summary>
    Csr,
    /// <summary>Aligned groups of GroupWidth weights along the input dimension, one index per group (SIMD-aware pruning).</summary>
    GroupedCsr,
    /// <summary>
    /// Groups of GroupWidth consecutive output rows sharing one input column, one index per group: the kernel
    /// broadcasts the input and accumulates a vector of outputs, with no horizontal sums (SIMD-aware pruning along outputs).
    /// </summary>
    OutputGrouped,
}

/// <summary>An activation fused into the epilogue of a Dense or Conv layer.</summary>
public enum Activation { None, Relu }

/// <summary>
/// One computation of the analysed graph, with concrete shapes (dimension 0 is the batch:
/// 1 for a per-sample model, the declared size for a fixed-batch one) and decoded constants.
/// Layers are immutable: a changed layer is a copy (<c>with</c>).
/// </summary>
public abstract record Layer
{
    protected Layer(Node node, string[] inputs, string output, int[] outputShape) =>
        (Node, Inputs, Output, OutputShape) = (node, inputs, output, outputShape);

    public Node Node { get; }
    public string Name => Node.Name;
    /// <summary>Runtime tensors this layer reads, in order.</summary>
    public string[] Inputs { get; }
    public string Output { get; init; }
    public int[] OutputShape { get; }
    public abstract string Kind { get; }
    public virtual long Macs => 0;
    /// <summary>Weight and bias values the layer stores.</summary>
    public virtual long Parameters => 0;
    /// <summary>A short description of the parameters that matter, for `inspect`.</summary>
    public virtual string Describe() => "";
    /// <summary>Calls the <paramref name="visitor"/>'s method for this layer's type.</summary>
    public abstract T Accept<T>(ILayerVisitor<T> visitor);
}

/// <summary>
/// A 2-D sliding window over an H x W plane (1-D uses H = 1): the geometry conv and pool layers share.
/// Input row <c>oh * StrideH - PadTop + i * DilationH</c> feeds output row oh at kernel row i.
/// </summary>
public sealed record Window2D(int H, int W, int KH, int KW, int StrideH, int StrideW, int DilationH, int DilationW,
    int PadTop, int PadLeft, int PadBottom, int PadRight, int OH, int OW)
{
    /// <summary>The input row output row <paramref name="oh"/> reads at kernel row <paramref name="i"/> (outside [0, H) in the padding).</summary>
    public int InputRow(int oh, int i) => oh * StrideH - PadTop + i * DilationH;
    /// <summary>The input column output column <paramref name="ow"/> reads at kernel column <paramref name="j"/>.</summary>
    public int InputCol(int ow, int j) => ow * StrideW - PadLeft + j * DilationW;
    public int Taps => KH * KW;
    public bool Dilated => DilationH * DilationW > 1;

    public string Describe() => $"k{KH}x{KW} s{StrideH}x{StrideW}";
}

/// <summary>MaxPool / AveragePool over 2-D windows (1-D uses H = 1).</summary>
public sealed record PoolLayer : Layer
{
    public PoolLayer(Node node, string input, string output, int[] outputShape) : base(node, [input], output, outputShape) { }
    public override T Accept<T>(ILayerVisitor<T> visitor) => visitor.Visit(this);
    public override string Kind => IsMax ? "MaxPool" : "AveragePool";
    public required bool IsMax { get; init; }
    public required int Planes { get; init; }
    public required Window2D Window { get; init; }
    public bool CountIncludePad { get; init; }
    public override string Describe() => Window.Describe();
}

public sealed record GlobalPoolLayer : Layer
{
    public GlobalPoolLayer(Node node, string input, string output, int[] outputShape) : base(node, [input], output, outputShape) { }
    public override T Accept<T>(ILayerVisitor<T> visitor) => visitor.Visit(this);
    public override string Kind => IsMax ? "GlobalMaxPool" : "GlobalAveragePool";
    public required bool IsMax { get; init; }
    public required int Planes { get; init; }
    public required int Spatial { get; init; }
}

/// <summary>Per-channel y = x * Scale[c] + Shift[c] (an unfolded BatchNormalization).</summary>
public sealed record ScaleShiftLayer : Layer
{
    public ScaleShiftLayer(Node node, string input, string output, int[] outputShape) : base(node, [input], output, outputShape) { }
    public override T Accept<T>(ILayerVisitor<T> visitor) => visitor.Visit(this);
    public override string Kind => "BatchNorm";
    public required int Batch { get; init; }
    public required int C { get; init; }
    public required int Spatial { get; init; }
    public required float[] Scale { get; init; }
    public required float[] Shift { get; init; }
    public override long Parameters => 2L * C;
}

public enum BinaryOp { Add, Sub, Mul, Div }

/// <summary>A runtime tensor or a constant, with its shape.</summary>
public sealed record Operand(string? Name, Tensor? Constant, int[] Shape);

public sealed record BinaryLayer : Layer
{
    public BinaryLayer(Node node, string[] inputs, string output, int[] outputShape) : base(node, inputs, output, outputShape) { }
    public override T Accept<T>(ILayerVisitor<T> visitor) => visitor.Visit(this);
    public override string Kind => Op.ToString();
    public required BinaryOp Op { get; init; }
    public required Operand A { get; init; }
    public required Operand B { get; init; }
    public override long Parameters => (A.Constant?.Data.LongLength ?? 0) + (B.Constant?.Data.LongLength ?? 0);
}

/// <summary>
/// HardSigmoid is max(0, min(1, Alpha * x + Beta)); HardSwish is x * HardSigmoid with 1/6 and 0.5; Pow raises to the
/// constant Alpha; Silu is x * sigmoid(x) (a Sigmoid and a Mul fused by <see cref="SiluFusion"/>).
/// </summary>
public enum UnaryFunction { Relu, LeakyRelu, Clip, Sigmoid, Tanh, HardSigmoid, HardSwish, Erf, Sqrt, Pow, Silu }

public sealed record UnaryLayer : Layer
{
    public UnaryLayer(Node node, string input, string output, int[] outputShape) : base(node, [input], output, outputShape) { }
    public override T Accept<T>(ILayerVisitor<T> visitor) => visitor.Visit(this);
    public override string Kind => Function.ToString();
    public required UnaryFunction Function { get; init; }
    public float Alpha { get; init; }
    public float Beta { get; init; }
    public float Min { get; init; } = float.NegativeInfinity;
    public float Max { get; init; } = float.PositiveInfinity;
}

/// <summary>Flatten, Reshape, Squeeze, Unsqueeze, Identity, Dropout: same data, new shape.</summary>
public sealed record ReshapeLayer : Layer
{
    public ReshapeLayer(Node node, string input, string output, int[] outputShape) : base(node, [input], output, outputShape) { }
    public override T Accept<T>(ILayerVisitor<T> visitor) => visitor.Visit(this);
    public override string Kind => Node.OpType;
}

public sealed record ConcatLayer : Layer
{
    public ConcatLayer(Node node, string[] inputs, string output, int[] outputShape) : base(node, inputs, output, outputShape) { }
    public override T Accept<T>(ILayerVisitor<T> visitor) => visitor.Visit(this);
    public override string Kind => "Concat";
    public required Operand[] Operands { get; init; }
    public required int Axis { get; init; }
}

public sealed record SoftmaxLayer : Layer
{
    public SoftmaxLayer(Node node, string input, string output, int[] outputShape) : base(node, [input], output, outputShape) { }
    public override T Accept<T>(ILayerVisitor<T> visitor) => visitor.Visit(this);
    public override string Kind => Log ? "LogSoftmax" : "Softmax";
    public required bool Log { get; init; }
    public required int Outer { get; init; }
    public required int AxisSize { get; init; }
    public required int Inner { get; init; }
}

public sealed record LrnLayer : Layer
{
    public LrnLayer(Node node, string input, string output, int[] outputShape) : base(node, [input], output, outputShape) { }
    public override T Accept<T>(ILayerVisitor<T> visitor) => visitor.Visit(this);
    public override string Kind => "LRN";
    public required int Batch { get; init; }
    public required int C { get; init; }
    public required int Spatial { get; init; }
    public required int Size { get; init; }
    public required float Alpha { get; init; }
    public required float Beta { get; init; }
    public required float Bias { get; init; }
}
