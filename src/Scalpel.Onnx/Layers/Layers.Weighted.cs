namespace Scalpel.Onnx.Layers;

/// <summary>The row of a target's crossover table and the override key ("fc", "conv") that describe a weighted layer.</summary>
public enum LayerKind { Fc, Conv }

public static class LayerKinds
{
    /// <summary>"fc" or "conv": the report's kind and the override key for every layer of the kind.</summary>
    public static string Label(this LayerKind kind) => kind.ToString().ToLowerInvariant();
}

/// <summary>A layer's weights as pruning leaves them: values, bias and the format the generated code stores them in.</summary>
public sealed record LayerWeights(float[] Weight, float[]? Bias, WeightFormat Format, int GroupWidth);

/// <summary>
/// A layer that multiplies by a weight matrix of <see cref="Rows"/> output units (Dense: neurons; Conv: output
/// channels) by <see cref="Columns"/> inputs each: what pruning changes and what the trainer updates. What differs
/// by kind for pruning, write-back and retraining is a member here, so that code outside the layer types never asks
/// which kind a layer is.
/// </summary>
public abstract record WeightedLayer : Layer
{
    protected WeightedLayer(Node node, string input, string output, int[] outputShape) : base(node, [input], output, outputShape) { }

    /// <summary>[Rows, Columns] row-major.</summary>
    public required float[] Weight { get; init; }
    /// <summary>Per-output bias [Rows], or null.</summary>
    public float[]? Bias { get; init; }
    public Activation Activation { get; init; }
    public WeightFormat Format { get; init; } = WeightFormat.Dense;
    /// <summary>Weights per group for <see cref="WeightFormat.GroupedCsr"/> and <see cref="WeightFormat.OutputGrouped"/>.</summary>
    public int GroupWidth { get; init; } = 1;
    public abstract int Rows { get; }
    public int Columns => Weight.Length / Rows;
    public override long Parameters => Weight.LongLength + (Bias?.LongLength ?? 0);

    public LayerWeights Weights => new(Weight, Bias, Format, GroupWidth);

    /// <summary>This layer holding other weights (pruned, refit or retrained).</summary>
    public WeightedLayer With(LayerWeights w) => this with { Weight = w.Weight, Bias = w.Bias, Format = w.Format, GroupWidth = w.GroupWidth };

    public abstract LayerKind Family { get; }
    /// <summary>Each output sees only a group of the input channels (grouped or depthwise conv): neither weight nor input-channel pruning applies.</summary>
    public abstract bool Grouped { get; }
    /// <summary>The sparse kernels fit: they read the input row-major and add a per-output bias.</summary>
    public abstract bool SparseFits { get; }
    /// <summary>An output-grouped sparse kernel exists for this kind.</summary>
    public abstract bool OutputGroupable { get; }
    /// <summary>Learned per-output gates can train on it and fold into its weight and bias.</summary>
    public abstract bool Gateable { get; }

    /// <summary>
    /// The rows ([n x Columns]) the weight multiplies for <paramref name="input"/> (samples one after another): the
    /// input itself, or a conv's im2col patches at up to <paramref name="positionsPerSample"/> positions per sample.
    /// </summary>
    public abstract float[] Features(float[] input, int positionsPerSample);

    /// <summary><paramref name="weight"/> ([Rows, Columns]) in the layout and scale of the ONNX initializer the layer read it from.</summary>
    public abstract float[] InitializerValues(float[] weight);

    protected string ActivationSuffix => Activation != Activation.None ? $" +{Activation}" : "";
}

/// <summary>Gemm or MatMul with a constant weight: y[m,n] = act(sum_k x[m,k] W[n,k] + bias).</summary>
public sealed record DenseLayer : WeightedLayer
{
    public DenseLayer(Node node, string input, string output, int[] outputShape) : base(node, input, output, outputShape) { }
    public override T Accept<T>(ILayerVisitor<T> visitor) => visitor.Visit(this);
    public override string Kind => "Dense";
    /// <summary>Input vectors multiplied per run: the batch times any leading dimensions.</summary>
    public required int InputRows { get; init; }
    public required int K { get; init; }
    public required int N { get; init; }
    public override int Rows => N;
    /// <summary>A full [InputRows, N] bias (Gemm's C without row broadcast), or null.</summary>
    public float[]? BiasFull { get; init; }
    /// <summary>The input is stored [K, InputRows] (Gemm transA = 1).</summary>
    public bool TransposeInput { get; init; }
    public override long Macs => (long)InputRows * N * K;
    public override long Parameters => base.Parameters + (BiasFull?.LongLength ?? 0);
    public override string Describe() => $"{K}->{N}" + ActivationSuffix;

    public override LayerKind Family => LayerKind.Fc;
    public override bool Grouped => false;
    public override bool SparseFits => !TransposeInput && BiasFull is null;
    public override bool OutputGroupable => true;
    /// <summary>A gate scales one output vector and folds into a per-output bias.</summary>
    public override bool Gateable => InputRows == 1 && BiasFull is null;
    public override float[] Features(float[] input, int positionsPerSample) => input;

    public override float[] InitializerValues(float[] weight)
    {
        bool transB = Node.OpType == "Gemm" && Node.Int("transB", 0) != 0;
        float alpha = Node.OpType == "Gemm" ? Node.Float("alpha", 1f) : 1f;
        // The layer holds [N, K] with alpha folded in; the initializer is B = [K, N], or [N, K] with transB.
        var values = new float[N * K];
        for (int r = 0; r < N; r++)
            for (int c = 0; c < K; c++)
                values[transB ? r * K + c : c * N + r] = weight[r * K + c] / alpha;
        return values;
    }
}

/// <summary>2-D convolution (1-D uses H = 1), any group count. Sizes follow ONNX's names: C input and M output channels.</summary>
public sealed record ConvLayer : WeightedLayer
{
    public ConvLayer(Node node, string input, string output, int[] outputShape) : base(node, input, output, outputShape) { }
    public override T Accept<T>(ILayerVisitor<T> visitor) => visitor.Visit(this);
    public override string Kind => "Conv";
    public required int Batch { get; init; }
    public required int C { get; init; }
    public required int M { get; init; }
    public required int Group { get; init; }
    public required Window2D Window { get; init; }
    public override int Rows => M;
    public bool IsDepthwise => Group == C && Group == M;
    public override long Macs => (long)Batch * M * Window.OH * Window.OW * (C / Group) * Window.Taps;
    public override string Describe() =>
        $"{C}->{M} k{Window.KH}x{Window.KW} s{Window.StrideH}x{Window.StrideW} p{Window.PadTop},{Window.PadLeft}" + (Group > 1 ? $" g{Group}" : "") +
        (Window.Dilated ? $" d{Window.DilationH}x{Window.DilationW}" : "") + ActivationSuffix;

    public override LayerKind Family => LayerKind.Conv;
    public override bool Grouped => Group > 1;
    public override bool SparseFits => true;
    public override bool OutputGroupable => false;
    public override bool Gateable => true;
    public override float[] Features(float[] input, int positionsPerSample) => Im2Col.Patches(input, this, positionsPerSample);
    /// <summary>[M, C, KH, KW] in the layer and in the initializer alike.</summary>
    public override float[] InitializerValues(float[] weight) => weight;
}
