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
/// </summary>
public abstract class Layer(Node node, string[] inputs, string output, int[] outputShape)
{
    public Node Node { get; } = node;
    public string Name => Node.Name;
    /// <summary>Runtime tensors this layer reads, in order.</summary>
    public string[] Inputs { get; } = inputs;
    public string Output { get; set; } = output;
    public int[] OutputShape { get; } = outputShape;
    public abstract string Kind { get; }
    public virtual long Macs => 0;
    /// <summary>Weight and bias values the layer stores.</summary>
    public virtual long Parameters => 0;
    /// <summary>A short description of the parameters that matter, for `inspect`.</summary>
    public virtual string Describe() => "";
}

/// <summary>Gemm or MatMul with a constant weight: y[m,n] = act(sum_k x[m,k] W[n,k] + bias).</summary>
public sealed class DenseLayer(Node node, string input, string output, int[] outputShape) : Layer(node, [input], output, outputShape)
{
    public override string Kind => "Dense";
    public required int M { get; init; }
    public required int K { get; init; }
    public required int N { get; init; }
    /// <summary>[N, K] row-major: one row per output neuron.</summary>
    public required float[] Weight { get; set; }
    /// <summary>Per-output bias [N], or null.</summary>
    public float[]? Bias { get; set; }
    /// <summary>A full [M, N] bias (Gemm's C without row broadcast), or null.</summary>
    public float[]? BiasFull { get; init; }
    /// <summary>The input is stored [K, M] (Gemm transA = 1).</summary>
    public bool TransposeInput { get; init; }
    public Activation Activation { get; set; }
    public WeightFormat Format { get; set; } = WeightFormat.Dense;
    /// <summary>Weights per group for <see cref="WeightFormat.GroupedCsr"/> and <see cref="WeightFormat.OutputGrouped"/>.</summary>
    public int GroupWidth { get; set; } = 1;
    /// <summary>False once fusion rescaled the weights, so they no longer equal the ONNX initializer.</summary>
    public bool WeightMatchesInitializer { get; set; } = true;
    public override long Macs => (long)M * N * K;
    public override long Parameters => Weight.LongLength + (Bias?.LongLength ?? 0) + (BiasFull?.LongLength ?? 0);
    public override string Describe() => $"{K}->{N}" + (Activation != Activation.None ? $" +{Activation}" : "");
}

/// <summary>2-D convolution (1-D uses H = 1), any group count.</summary>
public sealed class ConvLayer(Node node, string input, string output, int[] outputShape) : Layer(node, [input], output, outputShape)
{
    public override string Kind => "Conv";
    public required int Batch { get; init; }
    public required int C { get; init; }
    public required int H { get; init; }
    public required int W { get; init; }
    public required int M { get; init; }
    public required int KH { get; init; }
    public required int KW { get; init; }
    public required int Group { get; init; }
    public required int PadTop { get; init; }
    public required int PadLeft { get; init; }
    public required int StrideH { get; init; }
    public required int StrideW { get; init; }
    public required int DilationH { get; init; }
    public required int DilationW { get; init; }
    public required int OH { get; init; }
    public required int OW { get; init; }
    /// <summary>[M, C/Group, KH, KW].</summary>
    public required float[] Weight { get; set; }
    public float[]? Bias { get; set; }
    public Activation Activation { get; set; }
    public WeightFormat Format { get; set; } = WeightFormat.Dense;
    /// <summary>Weights per group for <see cref="WeightFormat.GroupedCsr"/> (along C * KH * KW).</summary>
    public int GroupWidth { get; set; } = 1;
    /// <summary>False once fusion rescaled the weights, so they no longer equal the ONNX initializer.</summary>
    public bool WeightMatchesInitializer { get; set; } = true;
    public bool IsDepthwise => Group == C && Group == M;
    public override long Macs => (long)Batch * M * OH * OW * (C / Group) * KH * KW;
    public override long Parameters => Weight.LongLength + (Bias?.LongLength ?? 0);
    public override string Describe() =>
        $"{C}->{M} k{KH}x{KW} s{StrideH}x{StrideW} p{PadTop},{PadLeft}" + (Group > 1 ? $" g{Group}" : "") +
        (DilationH * DilationW > 1 ? $" d{DilationH}x{DilationW}" : "") + (Activation != Activation.None ? $" +{Activation}" : "");
}

/// <summary>MaxPool / AveragePool over 2-D windows (1-D uses H = 1).</summary>
public sealed class PoolLayer(Node node, string input, string output, int[] outputShape) : Layer(node, [input], output, outputShape)
{
    public override string Kind => IsMax ? "MaxPool" : "AveragePool";
    public required bool IsMax { get; init; }
    public required int Planes { get; init; }
    public required int H { get; init; }
    public required int W { get; init; }
    public required int KH { get; init; }
    public required int KW { get; init; }
    public required int PadTop { get; init; }
    public required int PadLeft { get; init; }
    public required int PadBottom { get; init; }
    public required int PadRight { get; init; }
    public required int StrideH { get; init; }
    public required int StrideW { get; init; }
    public required int DilationH { get; init; }
    public required int DilationW { get; init; }
    public required int OH { get; init; }
    public required int OW { get; init; }
    public bool CountIncludePad { get; init; }
    public override string Describe() => $"k{KH}x{KW} s{StrideH}x{StrideW}";
}

public sealed class GlobalPoolLayer(Node node, string input, string output, int[] outputShape) : Layer(node, [input], output, outputShape)
{
    public override string Kind => IsMax ? "GlobalMaxPool" : "GlobalAveragePool";
    public required bool IsMax { get; init; }
    public required int Planes { get; init; }
    public required int Spatial { get; init; }
}

/// <summary>Per-channel y = x * Scale[c] + Shift[c] (an unfolded BatchNormalization).</summary>
public sealed class ScaleShiftLayer(Node node, string input, string output, int[] outputShape) : Layer(node, [input], output, outputShape)
{
    public override string Kind => "BatchNorm";
    public required int Batch { get; init; }
    public required int C { get; init; }
    public required int Spatial { get; init; }
    public required float[] Scale { get; init; }
    public required float[] Shift { get; init; }
    public override long Parameters => 2L * C;
}

public enum BinaryOp { Add, Sub, Mul }

/// <summary>A runtime tensor or a constant, with its shape.</summary>
public sealed record Operand(string? Name, Tensor? Constant, int[] Shape);

public sealed class BinaryLayer(Node node, string[] inputs, string output, int[] outputShape) : Layer(node, inputs, output, outputShape)
{
    public override string Kind => Op.ToString();
    public required BinaryOp Op { get; init; }
    public required Operand A { get; init; }
    public required Operand B { get; init; }
    public override long Parameters => (A.Constant?.Data.LongLength ?? 0) + (B.Constant?.Data.LongLength ?? 0);
}

public enum UnaryFunction { Relu, LeakyRelu, Clip, Sigmoid, Tanh }

public sealed class UnaryLayer(Node node, string input, string output, int[] outputShape) : Layer(node, [input], output, outputShape)
{
    public override string Kind => Function.ToString();
    public required UnaryFunction Function { get; init; }
    public float Alpha { get; init; }
    public float Min { get; init; } = float.NegativeInfinity;
    public float Max { get; init; } = float.PositiveInfinity;
}

/// <summary>Flatten, Reshape, Squeeze, Unsqueeze, Identity, Dropout: same data, new shape.</summary>
public sealed class ReshapeLayer(Node node, string input, string output, int[] outputShape) : Layer(node, [input], output, outputShape)
{
    public override string Kind => Node.OpType;
}

public sealed class ConcatLayer(Node node, string[] inputs, string output, int[] outputShape) : Layer(node, inputs, output, outputShape)
{
    public override string Kind => "Concat";
    public required Operand[] Operands { get; init; }
    public required int Axis { get; init; }
}

public sealed class SoftmaxLayer(Node node, string input, string output, int[] outputShape) : Layer(node, [input], output, outputShape)
{
    public override string Kind => Log ? "LogSoftmax" : "Softmax";
    public required bool Log { get; init; }
    public required int Outer { get; init; }
    public required int Axis { get; init; }
    public required int Inner { get; init; }
}

public sealed class LrnLayer(Node node, string input, string output, int[] outputShape) : Layer(node, [input], output, outputShape)
{
    public override string Kind => "LRN";
    public required int Batch { get; init; }
    public required int C { get; init; }
    public required int Spatial { get; init; }
    public required int Size { get; init; }
    public required float Alpha { get; init; }
    public required float Beta { get; init; }
    public required float Bias { get; init; }
}
