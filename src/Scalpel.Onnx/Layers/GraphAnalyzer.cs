using Scalpel.Onnx.Proto;

namespace Scalpel.Onnx.Layers;

/// <summary>
/// Turns an ONNX graph into layers with concrete shapes: checks every operator against the supported
/// set, infers shapes, folds constant subgraphs, BatchNorm into Conv/Gemm, and Relu into their epilogue.
/// </summary>
public sealed class GraphAnalyzer
{
    public static readonly IReadOnlyList<string> SupportedOperators =
    [
        "Gemm", "MatMul", "Conv", "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "MaxPool", "AveragePool",
        "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "Add", "Mul", "Sub", "Flatten", "Reshape",
        "Squeeze", "Unsqueeze", "Concat", "Softmax", "LogSoftmax", "Dropout", "Identity", "LRN", "Constant",
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
            if (node.Proto.Domain is not ("" or "ai.onnx") || !SupportedOperators.Contains(node.OpType))
                throw new UnsupportedModelException(
                    $"{Src}: {node} uses operator '{(node.Proto.Domain is "" ? "" : node.Proto.Domain + ".")}{node.OpType}', which Scalpel.Build does not support. Supported: {string.Join(", ", SupportedOperators)}.");
            if (node.Outputs.Count == 0 || node.Outputs[0].Length == 0)
                throw new ScalpelException($"{Src}: {node} has no output.");
            if (node.Proto.Attribute.GroupBy(a => a.Name).FirstOrDefault(g => g.Count() > 1) is { } twice)
                throw new ScalpelException($"{Src}: {node} has attribute '{twice.Key}' twice.");
            var layer = ParseChecked(node);
            if (layer is null) continue; // folded into a constant
            if (layer.OutputShape.Any(d => d <= 0) || layer.OutputShape.Aggregate(1.0, (p, d) => p * d) > MaxActivationElements)
                throw new UnsupportedModelException(
                    $"{Src}: {node} outputs shape {Shape.Format(layer.OutputShape)}; Scalpel.Build needs every dimension at least 1 and at most {MaxActivationElements} elements per tensor.");
            _shapes[layer.Output] = layer.OutputShape;
            layers.Add(layer);
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
        return fuse ? Fusion.Apply(model) : model;
    }

    /// <summary>Largest runtime tensor (per sample), in elements: generated buffers hold several samples and must stay within an int.</summary>
    public const int MaxActivationElements = 1 << 26;

    /// <summary>
    /// Parses one node. Attribute and shape checks name the node; anything they miss in a hostile file (an index
    /// or size out of range) still becomes an error naming the node rather than a crash.
    /// </summary>
    private Layer? ParseChecked(Node node)
    {
        try
        {
            return Parse(node);
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

    private bool IsConst(string name) => _folded.ContainsKey(name) || _graph.IsConstant(name);

    private Tensor Const(string name) => _folded.TryGetValue(name, out var t) ? t : _graph.Constant(name);

    private Tensor RequireConst(Node node, int index, string what)
    {
        var name = node.Input(index) ?? throw Error(node, $"has no {what} input");
        if (!IsConst(name))
            throw new UnsupportedModelException($"{Src}: {node}: the {what} ('{name}') must be a constant (an initializer); it is computed at run time.");
        return Const(name);
    }

    private long[] IntConst(Node node, int index, string what)
    {
        var name = node.Input(index) ?? throw Error(node, $"has no {what} input");
        if (_graph.IsConstant(name)) return _graph.IntConstant(name);
        throw new UnsupportedModelException($"{Src}: {node}: the {what} ('{name}') must be a constant.");
    }

    private int[] ShapeOf(string name) =>
        _shapes.TryGetValue(name, out var s) ? s : IsConst(name) ? Const(name).Dims : throw new ScalpelException($"{Src}: no shape known for tensor '{name}'.");

    private string RuntimeInput(Node node, int index = 0)
    {
        var name = node.Input(index) ?? throw Error(node, $"is missing input {index}");
        if (IsConst(name))
            throw new UnsupportedModelException($"{Src}: {node}: input '{name}' is a constant; Scalpel.Build expects computed data here.");
        return name;
    }

    private ScalpelException Error(Node node, string message) => new UnsupportedModelException($"{Src}: {node} {message}.");

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

    private Layer? Parse(Node node)
    {
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
            case "Add": case "Sub": case "Mul": return Binary(node, output);
            case "Relu": case "LeakyRelu": case "Clip": case "Sigmoid": case "Tanh": return Unary(node, output);
            case "Flatten": case "Reshape": case "Squeeze": case "Unsqueeze": case "Identity": case "Dropout": return Reshape(node, output);
            case "Concat": return Concat(node, output);
            case "Softmax": case "LogSoftmax": return Softmax(node, output);
            case "LRN": return Lrn(node, output);
            default: throw Error(node, "is not supported");
        }
    }

    private Layer Gemm(Node node, string output)
    {
        var a = RuntimeInput(node);
        var aShape = ShapeOf(a);
        if (aShape.Length != 2) throw Error(node, $"input A has shape {Shape.Format(aShape)}; Gemm needs 2-D");
        var b = RequireConst(node, 1, "weight B");
        if (b.Dims.Length != 2) throw Error(node, "weight B must be 2-D");
        bool transA = node.Int("transA", 0) != 0, transB = node.Int("transB", 0) != 0;
        float alpha = node.Float("alpha", 1f), beta = node.Float("beta", 1f);
        int m = transA ? aShape[1] : aShape[0], k = transA ? aShape[0] : aShape[1];
        int kb = transB ? b.Dims[1] : b.Dims[0], n = transB ? b.Dims[0] : b.Dims[1];
        if (k != kb) throw Error(node, $"A {Shape.Format(aShape)} and B {Shape.Format(b.Dims)} do not multiply");
        var w = new float[n * k];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < k; j++)
                w[i * k + j] = alpha * (transB ? b.Data[i * k + j] : b.Data[j * n + i]);
        float[]? bias = null, biasFull = null;
        if (node.Input(2) is not null)
        {
            var c = RequireConst(node, 2, "bias C");
            var cShape = c.Dims;
            if (Shape.Broadcast(cShape, [m, n]) is not { } bs || bs[0] != m || bs[1] != n)
                throw Error(node, $"bias C {Shape.Format(cShape)} does not broadcast to [{m},{n}]");
            var strides = Shape.BroadcastStrides(cShape, [m, n]);
            if (strides[0] == 0)
            {
                bias = new float[n];
                for (int j = 0; j < n; j++) bias[j] = beta * c.Data[j * strides[1]];
            }
            else
            {
                biasFull = new float[m * n];
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) biasFull[i * n + j] = beta * c.Data[i * strides[0] + j * strides[1]];
            }
        }
        return new DenseLayer(node, a, output, [m, n])
        {
            InputRows = m, K = k, N = n, Weight = w, Bias = bias, BiasFull = biasFull, TransposeInput = transA,
        };
    }

    private Layer MatMul(Node node, string output)
    {
        var a = RuntimeInput(node);
        var aShape = ShapeOf(a);
        var b = RequireConst(node, 1, "weight B");
        if (b.Dims.Length != 2 || aShape.Length < 2)
            throw Error(node, $"multiplies {Shape.Format(aShape)} by {Shape.Format(b.Dims)}; Scalpel.Build supports an input of rank 2 or more times a constant 2-D weight");
        int k = aShape[^1], n = b.Dims[1];
        if (b.Dims[0] != k) throw Error(node, $"A {Shape.Format(aShape)} and B {Shape.Format(b.Dims)} do not multiply");
        var w = new float[n * k];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < k; j++) w[i * k + j] = b.Data[j * n + i];
        var outShape = aShape[..^1].Append(n).ToArray();
        return new DenseLayer(node, a, output, outShape) { InputRows = Shape.Size(aShape) / k, K = k, N = n, Weight = w };
    }

    /// <summary>Spatial dims of a rank-3 or rank-4 NC... tensor as (H, W); rank 3 is 1-D (H = 1).</summary>
    private (int H, int W) Spatial(Node node, int[] shape)
    {
        return shape.Length switch
        {
            3 => (1, shape[2]),
            4 => (shape[2], shape[3]),
            _ => throw Error(node, $"has input shape {Shape.Format(shape)}; Scalpel.Build supports 1-D and 2-D spatial data"),
        };
    }

    /// <summary>Per-axis (begin pad, end pad, output size) for conv and pool, honouring auto_pad and ceil_mode.</summary>
    private (int Begin, int End, int Out) Window(Node node, int axis, int rank, int input, int kernel, int stride, int dilation, long[]? pads, bool ceil)
    {
        var autoPad = node.String("auto_pad") ?? "NOTSET";
        int span = (kernel - 1) * dilation + 1;
        switch (autoPad)
        {
            case "SAME_UPPER":
            case "SAME_LOWER":
            {
                int outSize = (input + stride - 1) / stride;
                int total = Math.Max(0, (outSize - 1) * stride + span - input);
                int begin = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
                return (begin, total - begin, outSize);
            }
            case "VALID":
                if (input < span) throw Error(node, "has a window larger than its input");
                return (0, 0, (input - span) / stride + 1);
            case "NOTSET" or "":
            {
                int begin = pads is null ? 0 : checked((int)pads[axis]);
                int end = pads is null ? 0 : checked((int)pads[axis + rank]);
                int extent = input + begin + end - span;
                if (extent < 0) throw Error(node, "has a window larger than its padded input");
                int outSize = ceil ? (extent + stride - 1) / stride + 1 : extent / stride + 1;
                // A last window that starts inside the end padding is dropped (as ONNX Runtime does).
                if (ceil && (outSize - 1) * stride >= input + begin) outSize--;
                return (begin, end, outSize);
            }
            default:
                throw Error(node, $"has auto_pad '{autoPad}'");
        }
    }

    private Layer Conv(Node node, string output)
    {
        var x = RuntimeInput(node);
        var xShape = ShapeOf(x);
        var (h, w) = Spatial(node, xShape);
        var weight = RequireConst(node, 1, "weight W");
        int rank = xShape.Length - 2;
        if (weight.Dims.Length != xShape.Length) throw Error(node, $"weight {Shape.Format(weight.Dims)} does not match input {Shape.Format(xShape)}");
        int group = checked((int)node.Int("group", 1));
        int c = xShape[1], m = weight.Dims[0];
        if (group <= 0 || c % group != 0 || m % group != 0 || weight.Dims[1] != c / group)
            throw Error(node, $"has group {group} with {c} input channels and weight {Shape.Format(weight.Dims)}");
        int kh = rank == 2 ? weight.Dims[2] : 1, kw = weight.Dims[^1];
        if (weight.Dims.Skip(2).Any(d => d < 1)) throw Error(node, $"has weight {Shape.Format(weight.Dims)} with an empty kernel");
        if (node.Ints("kernel_shape") is { } ks && !ks.SequenceEqual(weight.Dims.Skip(2).Select(d => (long)d)))
            throw Error(node, $"has kernel_shape [{string.Join(",", ks)}] but weight {Shape.Format(weight.Dims)}");
        var strides = AxisInts(node, "strides", rank, 1, 1);
        var dilations = AxisInts(node, "dilations", rank, 1, 1);
        var pads = node.Has("pads") ? AxisInts(node, "pads", rank, 0, 0, 2 * rank) : null;
        int sh = rank == 2 ? (int)strides[0] : 1, sw = (int)strides[^1];
        int dh = rank == 2 ? (int)dilations[0] : 1, dw = (int)dilations[^1];
        var (pt, pb, oh) = rank == 2 ? Window(node, 0, rank, h, kh, sh, dh, pads, false) : (0, 0, 1);
        var (pl, pr, ow) = Window(node, rank - 1, rank, w, kw, sw, dw, pads, false);
        float[]? bias = null;
        if (node.Input(2) is not null)
        {
            bias = RequireConst(node, 2, "bias B").Data;
            if (bias.Length != m) throw Error(node, $"has {bias.Length} biases for {m} output channels");
        }
        int[] outShape = rank == 2 ? [xShape[0], m, oh, ow] : [xShape[0], m, ow];
        return new ConvLayer(node, x, output, outShape)
        {
            Batch = xShape[0], C = c, M = m, Group = group, Window = new Window2D(h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, oh, ow),
            Weight = weight.Data, Bias = bias,
        };
    }

    private Layer Pool(Node node, string output)
    {
        var x = RuntimeInput(node);
        var xShape = ShapeOf(x);
        var (h, w) = Spatial(node, xShape);
        int rank = xShape.Length - 2;
        if (!node.Has("kernel_shape")) throw Error(node, "has no kernel_shape");
        var kernel = AxisInts(node, "kernel_shape", rank, 1, 1);
        var strides = AxisInts(node, "strides", rank, 1, 1);
        var dilations = AxisInts(node, "dilations", rank, 1, 1);
        var pads = node.Has("pads") ? AxisInts(node, "pads", rank, 0, 0, 2 * rank) : null;
        bool ceil = node.Int("ceil_mode", 0) != 0;
        int kh = rank == 2 ? (int)kernel[0] : 1, kw = (int)kernel[^1];
        int sh = rank == 2 ? (int)strides[0] : 1, sw = (int)strides[^1];
        int dh = rank == 2 ? (int)dilations[0] : 1, dw = (int)dilations[^1];
        var (pt, pb, oh) = rank == 2 ? Window(node, 0, rank, h, kh, sh, dh, pads, ceil) : (0, 0, 1);
        var (pl, pr, ow) = Window(node, rank - 1, rank, w, kw, sw, dw, pads, ceil);
        int[] outShape = rank == 2 ? [xShape[0], xShape[1], oh, ow] : [xShape[0], xShape[1], ow];
        return new PoolLayer(node, x, output, outShape)
        {
            IsMax = node.OpType == "MaxPool", Planes = xShape[0] * xShape[1], Window = new Window2D(h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, oh, ow),
            CountIncludePad = node.Int("count_include_pad", 0) != 0,
        };
    }

    private Layer GlobalPool(Node node, string output)
    {
        var x = RuntimeInput(node);
        var s = ShapeOf(x);
        if (s.Length < 3) throw Error(node, $"needs an input with spatial dimensions, got {Shape.Format(s)}");
        var outShape = s.Select((d, i) => i < 2 ? d : 1).ToArray();
        return new GlobalPoolLayer(node, x, output, outShape)
        {
            IsMax = node.OpType == "GlobalMaxPool", Planes = s[0] * s[1], Spatial = Shape.Size(s, 2, s.Length),
        };
    }

    private Layer BatchNorm(Node node, string output)
    {
        if (node.Int("training_mode", 0) != 0) throw Error(node, "is in training mode");
        var x = RuntimeInput(node);
        var s = ShapeOf(x);
        if (s.Length < 2) throw Error(node, $"needs an input of rank 2 or more, got {Shape.Format(s)}");
        var scale = RequireConst(node, 1, "scale").Data;
        var bias = RequireConst(node, 2, "bias").Data;
        var mean = RequireConst(node, 3, "mean").Data;
        var variance = RequireConst(node, 4, "variance").Data;
        int c = s[1];
        if (new[] { scale, bias, mean, variance }.Any(a => a.Length != c)) throw Error(node, $"needs {c} values per parameter");
        float eps = node.Float("epsilon", 1e-5f);
        var a = new float[c];
        var b = new float[c];
        for (int i = 0; i < c; i++)
        {
            a[i] = scale[i] / MathF.Sqrt(variance[i] + eps);
            b[i] = bias[i] - mean[i] * a[i];
        }
        return new ScaleShiftLayer(node, x, output, s)
        {
            Batch = s[0], C = c, Spatial = Shape.Size(s, 2, s.Length), Scale = a, Shift = b,
        };
    }

    private Operand Operand(Node node, int index)
    {
        var name = node.Input(index) ?? throw Error(node, $"is missing input {index}");
        return IsConst(name) ? new Operand(null, Const(name), Const(name).Dims) : new Operand(name, null, ShapeOf(name));
    }

    private Layer? Binary(Node node, string output)
    {
        var a = Operand(node, 0);
        var b = Operand(node, 1);
        var shape = Shape.Broadcast(a.Shape, b.Shape)
            ?? throw Error(node, $"cannot broadcast {Shape.Format(a.Shape)} with {Shape.Format(b.Shape)}");
        var op = Enum.Parse<BinaryOp>(node.OpType);
        if (a.Constant is not null && b.Constant is not null)
        {
            _folded[output] = new Tensor(output, shape, BinaryReference.Compute(op, a.Constant, b.Constant, shape));
            return null;
        }
        if (_mode == BatchMode.PerSample && shape.Length > 0 &&
            ((a.Constant is { } ca && ca.Dims.Length == shape.Length && ca.Dims[0] > 1) || (b.Constant is { } cb && cb.Dims.Length == shape.Length && cb.Dims[0] > 1)))
            throw Error(node, "broadcasts a constant along the batch dimension");
        var inputs = new[] { a.Name, b.Name }.OfType<string>().ToArray();
        return new BinaryLayer(node, inputs, output, shape) { Op = op, A = a, B = b };
    }

    private Layer Unary(Node node, string output)
    {
        var x = RuntimeInput(node);
        var s = ShapeOf(x);
        float min = float.NegativeInfinity, max = float.PositiveInfinity;
        if (node.OpType == "Clip")
        {
            if (_graph.Opset < 11)
            {
                min = node.Float("min", float.MinValue);
                max = node.Float("max", float.MaxValue);
            }
            else
            {
                if (node.Input(1) is not null) min = Scalar(RequireConst(node, 1, "min"), node, "min");
                if (node.Input(2) is not null) max = Scalar(RequireConst(node, 2, "max"), node, "max");
            }
        }
        return new UnaryLayer(node, x, output, s)
        {
            Function = Enum.Parse<UnaryFunction>(node.OpType),
            Alpha = node.Float("alpha", 0.01f), Min = min, Max = max,
        };
    }

    private float Scalar(Tensor t, Node node, string what) =>
        t.Data.Length == 1 ? t.Data[0] : throw Error(node, $"has a {what} of shape {Shape.Format(t.Dims)}; it must be a scalar");

    private Layer? Reshape(Node node, string output)
    {
        var name = node.Input(0) ?? throw Error(node, "has no input");
        var s = ShapeOf(name);
        if (node.OpType == "Dropout" && node.Input(2) is { } training &&
            (!_graph.IsConstant(training) || _graph.ConstantProto(training) is var t && (t.Int32Data.Any(v => v != 0) || t.RawData.Span.IndexOfAnyExcept((byte)0) >= 0)))
            throw Error(node, "runs in training mode (training_mode is true or computed)");
        int[] shape = node.OpType switch
        {
            "Flatten" => FlattenShape(node, s),
            "Reshape" => ReshapeShape(node, s),
            "Squeeze" => SqueezeShape(node, s),
            "Unsqueeze" => UnsqueezeShape(node, s),
            _ => s,
        };
        if (IsConst(name))
        {
            _folded[output] = new Tensor(output, shape, Const(name).Data);
            return null;
        }
        if (_mode == BatchMode.PerSample && node.OpType is "Reshape" or "Squeeze" && (shape.Length == 0 || shape[0] != 1) && Shape.Size(shape) > 0)
        {
            // A per-sample reshape must keep the batch axis in front; anything else mixes samples.
            if (shape.Length == 0 || Shape.Size(s, 1, s.Length) != Shape.Size(shape, 1, shape.Length))
                throw Error(node, $"reshapes {Shape.Format(s, true)} to {Shape.Format(shape)}, moving data across the batch dimension");
        }
        return new ReshapeLayer(node, name, output, shape);
    }

    private int[] FlattenShape(Node node, int[] s)
    {
        long axis = node.Int("axis", 1);
        if (axis < -s.Length || axis > s.Length) throw Error(node, $"has axis {axis} for rank {s.Length}");
        int a = (int)(axis < 0 ? axis + s.Length : axis);
        return [Shape.Size(s, 0, a), Shape.Size(s, a, s.Length)];
    }

    private int[] ReshapeShape(Node node, int[] s)
    {
        var target = _graph.Opset < 5 ? node.Ints("shape") ?? throw Error(node, "has no shape") : IntConst(node, 1, "shape");
        bool allowZero = node.Int("allowzero", 0) != 0;
        var shape = new int[target.Length];
        int infer = -1;
        for (int i = 0; i < target.Length; i++)
        {
            if (target[i] == -1)
            {
                if (infer >= 0) throw Error(node, "has more than one -1 in its shape");
                infer = i;
                shape[i] = 1;
            }
            else if (target[i] == 0 && !allowZero)
                shape[i] = i < s.Length ? s[i] : throw Error(node, "copies a dimension its input lacks");
            else if (target[i] < 0)
                throw Error(node, $"has an invalid shape value {target[i]}");
            else
                shape[i] = checked((int)target[i]);
        }
        int size = Shape.Size(s);
        if (infer >= 0)
        {
            int rest = Shape.Size(shape);
            if (rest == 0 || size % rest != 0) throw Error(node, $"cannot reshape {Shape.Format(s)} to [{string.Join(",", target)}]");
            shape[infer] = size / rest;
        }
        if (Shape.Size(shape) != size) throw Error(node, $"cannot reshape {Shape.Format(s)} to [{string.Join(",", target)}]");
        return shape;
    }

    private long[]? Axes(Node node) =>
        _graph.Opset < 13 ? node.Ints("axes") : node.Input(1) is null ? null : IntConst(node, 1, "axes");

    private int[] SqueezeShape(Node node, int[] s)
    {
        var axes = Axes(node)?.Select(a => NormalizeAxis(a, s.Length, node, Src)).ToHashSet();
        var shape = new List<int>();
        for (int i = 0; i < s.Length; i++)
        {
            bool squeeze = axes is null ? s[i] == 1 : axes.Contains(i);
            if (squeeze && s[i] != 1) throw Error(node, $"squeezes axis {i} of size {s[i]}");
            if (!squeeze) shape.Add(s[i]);
        }
        return shape.ToArray();
    }

    private int[] UnsqueezeShape(Node node, int[] s)
    {
        var raw = Axes(node) ?? throw Error(node, "has no axes");
        int rank = s.Length + raw.Length;
        var axes = raw.Select(a => NormalizeAxis(a, rank, node, Src)).ToHashSet();
        var shape = new int[rank];
        for (int i = 0, j = 0; i < rank; i++) shape[i] = axes.Contains(i) ? 1 : s[j++];
        return shape;
    }

    private Layer Concat(Node node, string output)
    {
        if (node.Inputs.Count == 0) throw Error(node, "has no inputs");
        var operands = Enumerable.Range(0, node.Inputs.Count).Select(i => Operand(node, i)).ToArray();
        int rank = operands[0].Shape.Length;
        int axis = NormalizeAxis(node.Int("axis", 1), rank, node, Src);
        RequireNotBatchAxis(node, axis);
        var shape = (int[])operands[0].Shape.Clone();
        shape[axis] = 0;
        foreach (var o in operands)
        {
            if (o.Shape.Length != rank || Enumerable.Range(0, rank).Any(i => i != axis && o.Shape[i] != operands[0].Shape[i]))
                throw Error(node, $"concatenates mismatched shapes {Shape.Format(operands[0].Shape)} and {Shape.Format(o.Shape)}");
            shape[axis] += o.Shape[axis];
        }
        if (operands.All(o => o.Constant is not null)) throw Error(node, "concatenates only constants");
        return new ConcatLayer(node, operands.Select(o => o.Name).OfType<string>().ToArray(), output, shape) { Operands = operands, Axis = axis };
    }

    private Layer Softmax(Node node, string output)
    {
        var x = RuntimeInput(node);
        var s = ShapeOf(x);
        bool legacy = _graph.Opset < 13;
        int axis = NormalizeAxis(node.Int("axis", legacy ? 1 : -1), s.Length, node, Src);
        RequireNotBatchAxis(node, axis);
        // Before opset 13 the input is coerced to 2-D at `axis`; from 13 the reduction is along one axis.
        int outer = Shape.Size(s, 0, axis);
        int d = legacy ? Shape.Size(s, axis, s.Length) : s[axis];
        int inner = legacy ? 1 : Shape.Size(s, axis + 1, s.Length);
        return new SoftmaxLayer(node, x, output, s) { Log = node.OpType == "LogSoftmax", Outer = outer, AxisSize = d, Inner = inner };
    }

    private Layer Lrn(Node node, string output)
    {
        var x = RuntimeInput(node);
        var s = ShapeOf(x);
        if (s.Length < 3) throw Error(node, $"needs an NC... input, got {Shape.Format(s)}");
        return new LrnLayer(node, x, output, s)
        {
            Batch = s[0], C = s[1], Spatial = Shape.Size(s, 2, s.Length), Size = node.Int("size", 1) is >= 1 and <= int.MaxValue and var size ? (int)size : throw Error(node, "has an LRN size below 1"),
            Alpha = node.Float("alpha", 1e-4f), Beta = node.Float("beta", 0.75f), Bias = node.Float("bias", 1f),
        };
    }
}
