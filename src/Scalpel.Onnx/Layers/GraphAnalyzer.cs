using Scalpel.Onnx.Proto;

namespace Scalpel.Onnx.Layers;

/// <summary>
/// Turns an ONNX graph into layers with concrete shapes: checks every operator against the supported
/// set, infers shapes, folds constant subgraphs, BatchNorm into Conv/Gemm, and Relu into their epilogue.
/// </summary>
public sealed partial class GraphAnalyzer
{
    public static readonly IReadOnlyList<string> SupportedOperators =
    [
        "Gemm", "MatMul", "Conv", "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "MaxPool", "AveragePool",
        "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "Add", "Mul", "Sub", "Flatten", "Reshape",
        "Squeeze", "Unsqueeze", "Concat", "Softmax", "LogSoftmax", "Dropout", "Identity", "LRN", "Constant",
        "Div", "HardSigmoid", "HardSwish", "Erf", "Sqrt", "Pow", "Transpose", "Slice", "Split", "Gather", "Pad", "Resize", "Upsample",
        "ReduceMean", "ReduceMax",
    ];

    private readonly OnnxGraph _graph;
    private readonly Dictionary<string, int[]> _shapes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tensor> _folded = new(StringComparer.Ordinal);
    private BatchMode _mode;

    private GraphAnalyzer(OnnxGraph graph) => _graph = graph;

    public static ModelGraph Analyze(OnnxModel model) => Analyze(new OnnxGraph(BatchNormFolding.Apply(model)));

    public static ModelGraph Analyze(OnnxGraph graph, bool fuse = true) => new GraphAnalyzer(graph).Run(fuse);

    private string Src => _graph.Source;

    private ModelGraph Run(bool fuse)
    {
        if (_graph.Inputs.Count != 1)
            throw new UnsupportedModelException(
                $"{Src}: the graph has {_graph.Inputs.Count} runtime inputs ({string.Join(", ", _graph.Inputs.Select(i => i.Name))}); Scalpel.Build compiles models with exactly one.");
        if (_graph.Outputs.Count != 1)
            throw new UnsupportedModelException(
                $"{Src}: the graph has {_graph.Outputs.Count} outputs; Scalpel.Build compiles models with exactly one.");
        var input = _graph.Inputs[0];
        var declared = _graph.DeclaredShape(input);
        if (declared.Length == 0)
            throw new UnsupportedModelException($"{Src}: graph input '{input.Name}' is a scalar; expected a tensor with a batch dimension.");
        for (int i = 1; i < declared.Length; i++)
            if (declared[i] <= 0)
                throw new UnsupportedModelException($"{Src}: graph input '{input.Name}' has an unknown size in dimension {i}; only the batch dimension may be symbolic.");
        _mode = declared[0] > 1 ? BatchMode.Whole : BatchMode.PerSample;
        var inputShape = (int[])declared.Clone();
        if (_mode == BatchMode.PerSample) inputShape[0] = 1;
        _shapes[input.Name] = inputShape;

        var outputName = _graph.Outputs[0].Name;
        var live = LiveNodes(outputName);
        var layers = new List<Layer>();
        foreach (var node in _graph.Nodes)
        {
            if (!live.Contains(node)) continue;
            if (node.Proto.Domain is not ("" or "ai.onnx") || !SupportedOperators.Contains(node.OpType) && !FoldedOperators.Contains(node.OpType))
                throw Unsupported(node);
            if (node.Outputs.Count == 0 || node.Outputs[0].Length == 0)
                throw new ScalpelException($"{Src}: {node} has no output.");
            if (node.Proto.Attribute.GroupBy(a => a.Name).FirstOrDefault(g => g.Count() > 1) is { } twice)
                throw new ScalpelException($"{Src}: {node} has attribute '{twice.Key}' twice.");
            // None when the node folded into a constant; several for a Split.
            foreach (var layer in ParseChecked(node))
            {
                if (layer.OutputShape.Any(d => d <= 0) || layer.OutputShape.Aggregate(1.0, (p, d) => p * d) > MaxActivationElements)
                    throw new UnsupportedModelException(
                        $"{Src}: {node} outputs shape {Shape.Format(layer.OutputShape)}; Scalpel.Build needs every dimension at least 1 and at most {MaxActivationElements} elements per tensor.");
                _shapes[layer.Output] = layer.OutputShape;
                layers.Add(layer);
            }
        }
        if (IsConst(outputName))
            throw new UnsupportedModelException($"{Src}: the graph output '{outputName}' is a constant; nothing to compute.");
        if (!_shapes.ContainsKey(outputName))
            throw new ScalpelException($"{Src}: nothing produces the graph output '{outputName}'.");

        var model = new ModelGraph
        {
            Source = Src, Opset = _graph.Opset, BatchMode = _mode, InputName = input.Name, InputShape = inputShape,
            OutputName = outputName, OutputShape = _shapes[outputName], Layers = layers, Shapes = _shapes,
        };
        return fuse ? SiluFusion.Apply(Fusion.Apply(model)) : model;
    }

    /// <summary>Largest runtime tensor (per sample), in elements: generated buffers hold several samples and must stay within an int.</summary>
    public const int MaxActivationElements = 1 << 26;

    /// <summary>
    /// Parses one node. Attribute and shape checks name the node; anything they miss in a hostile file (an index
    /// or size out of range) still becomes an error naming the node rather than a crash.
    /// </summary>
    private List<Layer> ParseChecked(Node node)
    {
        try
        {
            if (TryFold(node)) return [];
            return node.OpType == "Split" ? Split(node) : [Parse(node)];
        }
        catch (Exception e) when (e is OverflowException or IndexOutOfRangeException or ArgumentException or InvalidOperationException or DivideByZeroException)
        {
            throw new ScalpelException($"{Src}: {node} has inconsistent attributes or shapes ({e.Message}); check the node with an ONNX checker.", e);
        }
    }

    /// <summary>A per-spatial-axis attribute (strides, dilations, kernel_shape): `rank` values, each at least `min`; the default when absent.</summary>
    private long[] AxisInts(Node node, string name, int rank, long min, long fallback, int count = 0)
    {
        count = count == 0 ? rank : count;
        var values = node.Ints(name);
        if (values is null) return Enumerable.Repeat(fallback, count).ToArray();
        if (values.Length != count)
            throw new ScalpelException($"{Src}: {node} has {values.Length} {name} values; its {rank}-D input needs {count}.");
        if (values.Any(v => v < min || v > MaxActivationElements))
            throw new ScalpelException($"{Src}: {node} has {name} [{string.Join(",", values)}]; each must be from {min} to {MaxActivationElements}.");
        return values;
    }

    private HashSet<Node> LiveNodes(string output)
    {
        var producers = new Dictionary<string, Node>(StringComparer.Ordinal);
        foreach (var n in _graph.Nodes)
            foreach (var o in n.Outputs) producers[o] = n;
        var live = new HashSet<Node>();
        var work = new Stack<string>([output]);
        while (work.Count > 0)
            if (producers.TryGetValue(work.Pop(), out var node) && live.Add(node))
                foreach (var i in node.Inputs) if (i.Length > 0) work.Push(i);
        return live;
    }

    // ---- helpers -------------------------------------------------------------------------------

    private bool IsConst(string name) => IsKnown(name);

    private Tensor Const(string name) =>
        _folded.TryGetValue(name, out var t) ? t : _known.TryGetValue(name, out var k) ? _folded[name] = k.ToTensor(name) : _graph.Constant(name);

    private Tensor RequireConst(Node node, int index, string what)
    {
        var name = node.Input(index) ?? throw Error(node, $"has no {what} input");
        if (!IsConst(name))
            throw new UnsupportedModelException($"{Src}: {node}: the {what} ('{name}') must be a constant (an initializer); it is computed at run time.");
        return Const(name);
    }

    /// <summary>
    /// A constant integer input (a shape, axes, pads). With <paramref name="batchFirst"/>, its first value may be the
    /// symbolic batch size (a Reshape's target or a Resize's sizes, as exporters compute them from the input's shape); nowhere else.
    /// </summary>
    private long[] IntConst(Node node, int index, string what, bool batchFirst = false)
    {
        var name = node.Input(index) ?? throw Error(node, $"has no {what} input");
        if (!IsKnown(name)) throw new UnsupportedModelException($"{Src}: {node}: the {what} ('{name}') must be a constant.");
        var value = KnownOf(name);
        if (!value.IsInt) throw Error(node, $"has a {what} of floats; it must hold integers");
        if (value.Batch is { } batch && batch.Select((b, i) => b && (i > 0 || !batchFirst)).Any(b => b))
            throw Error(node, $"uses the symbolic batch size in its {what}, which Scalpel.Build only accepts as the first value of a Reshape's shape or a Resize's sizes");
        return value.Ints!;
    }

    private int[] ShapeOf(string name) =>
        _shapes.TryGetValue(name, out var s) ? s : IsKnown(name) ? _known.TryGetValue(name, out var k) ? k.Dims : Const(name).Dims
            : throw new ScalpelException($"{Src}: no shape known for tensor '{name}'.");

    private string RuntimeInput(Node node, int index = 0)
    {
        var name = node.Input(index) ?? throw Error(node, $"is missing input {index}");
        if (IsConst(name))
            throw new UnsupportedModelException($"{Src}: {node}: input '{name}' is a constant; Scalpel.Build expects computed data here.");
        return name;
    }

    private ScalpelException Error(Node node, string message) => new UnsupportedModelException($"{Src}: {node} {message}.");

    /// <summary>What to export instead of an operator Scalpel.Build does not support, where a supported form exists.</summary>
    private static readonly Dictionary<string, string> Rewrites = new(StringComparer.Ordinal)
    {
        ["Gelu"] = "export at opset 17 or lower, where GELU is written as Div, Erf, Add and Mul",
        ["PRelu"] = "LeakyRelu, when the slope is one value for every channel",
        ["Einsum"] = "MatMul with a constant weight, with Transpose where axes move",
        ["DepthToSpace"] = "Reshape, Transpose and Reshape (the same data movement)",
        ["SpaceToDepth"] = "Reshape, Transpose and Reshape (the same data movement)",
        ["Tile"] = "Concat of the tensor with itself",
        ["Sum"] = "Add, two inputs at a time",
        ["ReduceSum"] = "ReduceMean over the spatial axes (a global average pool) times a constant",
        ["GlobalLpPool"] = "GlobalAveragePool or GlobalMaxPool",
        ["QuantizeLinear"] = "the float32 model: Scalpel.Build compiles float32 models",
        ["DequantizeLinear"] = "the float32 model: Scalpel.Build compiles float32 models",
        ["QLinearConv"] = "the float32 model: Scalpel.Build compiles float32 models",
        ["QLinearMatMul"] = "the float32 model: Scalpel.Build compiles float32 models",
    };

    private UnsupportedModelException Unsupported(Node node)
    {
        bool standard = node.Proto.Domain is "" or "ai.onnx";
        var op = (standard ? "" : node.Proto.Domain + ".") + node.OpType;
        var rewrite = standard && Rewrites.TryGetValue(node.OpType, out var r) ? $" Nearest supported rewrite: {r}." : "";
        return new UnsupportedModelException(
            $"{Src}: {node} uses operator '{op}', which Scalpel.Build does not support.{rewrite} Supported: {string.Join(", ", SupportedOperators)}; on constants and static shapes also {string.Join(", ", FoldedOperators)}.");
    }

    private static int NormalizeAxis(long axis, int rank, Node node, string src)
    {
        long a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank) throw new ScalpelException($"{src}: {node}: axis {axis} is out of range for rank {rank}.");
        return (int)a;
    }

    private void RequireNotBatchAxis(Node node, int axis)
    {
        if (axis == 0 && _mode == BatchMode.PerSample)
            throw Error(node, "works across the batch dimension (axis 0), which Scalpel.Build keeps per sample");
    }

    private void RequireSingleOutput(Node node)
    {
        if (node.Outputs.Skip(1).Any(o => o.Length > 0 && IsRead(o)))
            throw Error(node, "uses more than one output; only the first is supported");
    }

    private bool IsRead(string tensor) =>
        _graph.Nodes.Any(n => n.Inputs.Contains(tensor)) || _graph.Outputs.Any(o => o.Name == tensor);

    // ---- operators -------------------------------------------------------------------------------

    private Layer Parse(Node node)
    {
        if (FoldedOperators.Contains(node.OpType))
            throw Error(node, $"computes at run time; Scalpel.Build supports {node.OpType} only on constants and static shapes, which it evaluates once");
        RequireSingleOutput(node);
        var output = node.Outputs[0];
        switch (node.OpType)
        {
            case "Gemm": return Gemm(node, output);
            case "MatMul": return MatMul(node, output);
            case "Conv": return Conv(node, output);
            case "MaxPool": case "AveragePool": return Pool(node, output);
            case "GlobalAveragePool": case "GlobalMaxPool": return GlobalPool(node, output);
            case "BatchNormalization": return BatchNorm(node, output);
            case "Add": case "Sub": case "Mul": case "Div": return Binary(node, output);
            case "Relu": case "LeakyRelu": case "Clip": case "Sigmoid": case "Tanh":
            case "HardSigmoid": case "HardSwish": case "Erf": case "Sqrt": case "Pow": return Unary(node, output);
            case "Transpose": return Transpose(node, output);
            case "Slice": return Slice(node, output);
            case "Gather": return Gather(node, output);
            case "Pad": return Pad(node, output);
            case "Resize": case "Upsample": return Resize(node, output);
            case "ReduceMean": case "ReduceMax": return Reduce(node, output);
            case "Flatten": case "Reshape": case "Squeeze": case "Unsqueeze": case "Identity": case "Dropout": return Reshape(node, output);
            case "Concat": return Concat(node, output);
            case "Softmax": case "LogSoftmax": return Softmax(node, output);
            case "LRN": return Lrn(node, output);
            default: throw Error(node, "is not supported");
        }
    }
}
