namespace Scalpel.Onnx.Layers;

/// <summary>
/// Layers that move data on runtime tensors: Transpose, Slice, Split, Gather with constant indices, Pad (constant
/// mode), Resize/Upsample (nearest, and linear on up to two axes), and ReduceMean/ReduceMax over every spatial axis (a global pool).
/// </summary>
public sealed partial class GraphAnalyzer
{
    private int[] Permutation(Node node, int rank)
    {
        var perm = node.Ints("perm") ?? Enumerable.Range(0, rank).Reverse().Select(i => (long)i).ToArray();
        if (perm.Length != rank || perm.Order().Select((p, i) => p != i).Any(b => b))
            throw Error(node, $"has perm [{string.Join(",", perm)}], not a permutation of {rank} axes");
        return perm.Select(p => (int)p).ToArray();
    }

    private Layer Transpose(Node node, string output)
    {
        var x = RuntimeInput(node);
        var s = ShapeOf(x);
        var perm = Permutation(node, s.Length);
        if (_mode == BatchMode.PerSample && s.Length > 0 && perm[0] != 0)
            throw Error(node, "moves the batch dimension (perm[0] is not 0), which Scalpel.Build keeps per sample");
        var (dims, strides) = TransposeStrides(s, perm);
        return new StridedCopyLayer(node, x, output, dims) { Operator = "Transpose", InputShape = s, Counts = dims, Offset = 0, Strides = strides };
    }

    /// <summary>Slice's per-axis first index, step and count (every axis of <paramref name="dims"/>; unsliced ones whole).</summary>
    private (int[] Start, int[] Step, int[] Count) SliceRanges(Node node, int[] dims)
    {
        long[] starts, ends, axes, steps;
        if (_graph.Opset < 10)
        {
            starts = node.Ints("starts") ?? throw Error(node, "has no starts");
            ends = node.Ints("ends") ?? throw Error(node, "has no ends");
            axes = node.Ints("axes") ?? Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray();
            steps = Enumerable.Repeat(1L, starts.Length).ToArray();
        }
        else
        {
            starts = IntConst(node, 1, "starts");
            ends = IntConst(node, 2, "ends");
            axes = node.Input(3) is null ? Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray() : IntConst(node, 3, "axes");
            steps = node.Input(4) is null ? Enumerable.Repeat(1L, starts.Length).ToArray() : IntConst(node, 4, "steps");
        }
        if (ends.Length != starts.Length || axes.Length != starts.Length || steps.Length != starts.Length)
            throw Error(node, "has starts, ends, axes and steps of different lengths");
        int rank = dims.Length;
        var start = new int[rank];
        var step = Enumerable.Repeat(1, rank).ToArray();
        var count = (int[])dims.Clone();
        var seen = new HashSet<int>();
        for (int i = 0; i < axes.Length; i++)
        {
            int axis = NormalizeAxis(axes[i], rank, node, Src);
            if (!seen.Add(axis)) throw Error(node, $"slices axis {axis} twice");
            long dim = dims[axis], s = starts[i], e = ends[i], st = steps[i];
            if (st == 0 || Math.Abs(st) > MaxActivationElements) throw Error(node, $"has step {st}");
            if (s < 0) s += dim;
            if (e < 0) e += dim;
            s = st > 0 ? Math.Clamp(s, 0, dim) : Math.Clamp(s, 0, dim - 1);
            e = st > 0 ? Math.Clamp(e, 0, dim) : Math.Clamp(e, -1, dim - 1);
            long n = Math.Max(0, (e - s + st + (st > 0 ? -1 : 1)) / st);
            if (axis == 0 && _mode == BatchMode.PerSample && (s != 0 || st != 1 || ends[i] < int.MaxValue))
                throw Error(node, "slices the batch dimension, which Scalpel.Build keeps per sample");
            (start[axis], step[axis], count[axis]) = ((int)s, (int)st, (int)n);
        }
        return (start, step, count);
    }

    private Layer Slice(Node node, string output)
    {
        var x = RuntimeInput(node);
        var s = ShapeOf(x);
        var (start, step, count) = SliceRanges(node, s);
        return new StridedCopyLayer(node, x, output, count)
        {
            Operator = "Slice", InputShape = s, Counts = count, Offset = Offset(start, s), Strides = ScaledStrides(step, s),
        };
    }

    /// <summary>Split: one strided copy per output that something reads.</summary>
    private List<Layer> Split(Node node)
    {
        var x = RuntimeInput(node);
        var s = ShapeOf(x);
        int axis = NormalizeAxis(node.Int("axis", 0), s.Length, node, Src);
        RequireNotBatchAxis(node, axis);
        int parts = node.Outputs.Count;
        long[] sizes = _graph.Opset < 13 ? node.Ints("split") ?? [] : node.Input(1) is null ? [] : IntConst(node, 1, "split");
        if (sizes.Length == 0)
        {
            if (node.Int("num_outputs", parts) != parts) throw Error(node, "has num_outputs different from its outputs");
            int chunk = (s[axis] + parts - 1) / parts;
            sizes = Enumerable.Range(0, parts).Select(i => (long)Math.Clamp(s[axis] - i * chunk, 0, chunk)).ToArray();
        }
        if (sizes.Length != parts || sizes.Any(v => v < 0) || sizes.Sum() != s[axis])
            throw Error(node, $"splits {s[axis]} along axis {axis} into [{string.Join(",", sizes)}] for {parts} outputs");
        var layers = new List<Layer>();
        var strides = Shape.Strides(s);
        for (int i = 0, begin = 0; i < parts; begin += (int)sizes[i], i++)
        {
            if (node.Outputs[i].Length == 0 || !IsRead(node.Outputs[i])) continue;
            var dims = (int[])s.Clone();
            dims[axis] = (int)sizes[i];
            layers.Add(new StridedCopyLayer(node, x, node.Outputs[i], dims)
            {
                Operator = "Split", InputShape = s, Counts = dims, Offset = begin * strides[axis], Strides = strides,
            });
        }
        return layers;
    }

    private Layer Gather(Node node, string output)
    {
        var x = RuntimeInput(node);
        var s = ShapeOf(x);
        int axis = NormalizeAxis(node.Int("axis", 0), s.Length, node, Src);
        RequireNotBatchAxis(node, axis);
        var indices = KnownOf(node.Input(1) ?? throw Error(node, "has no indices"));
        var values = IntConst(node, 1, "indices");
        int size = s[axis];
        var index = values.Select(v => v < -size || v >= size ? throw Error(node, $"has index {v} for a dimension of {size}") : (int)(v < 0 ? v + size : v)).ToArray();
        int[] dims = [.. s[..axis], .. indices.Dims, .. s[(axis + 1)..]];
        return new GatherLayer(node, x, output, dims)
        {
            Outer = Shape.Size(s, 0, axis), AxisSize = size, Inner = Shape.Size(s, axis + 1, s.Length), Indices = index,
        };
    }

    private Layer Pad(Node node, string output)
    {
        var x = RuntimeInput(node);
        var s = ShapeOf(x);
        var mode = node.String("mode") ?? "constant";
        if (mode != "constant")
            throw Error(node, $"pads in mode '{mode}'; Scalpel.Build supports constant padding (reflect and edge padding have no rewrite)");
        long[] pads = _graph.Opset < 11 ? node.Ints("pads") ?? throw Error(node, "has no pads") : IntConst(node, 1, "pads");
        float value = _graph.Opset < 11 ? node.Float("value", 0f)
            : node.Input(2) is null ? 0f : Scalar(RequireConst(node, 2, "constant_value"), node, "constant_value");
        int rank = s.Length;
        var axes = node.Input(3) is null ? Enumerable.Range(0, rank).ToArray() : IntConst(node, 3, "axes").Select(a => NormalizeAxis(a, rank, node, Src)).ToArray();
        if (pads.Length != 2 * axes.Length) throw Error(node, $"has {pads.Length} pads for {axes.Length} axes");
        if (pads.Any(p => p < 0 || p > MaxActivationElements))
            throw Error(node, $"has pads [{string.Join(",", pads)}]; Scalpel.Build supports pads from 0 to {MaxActivationElements} (a negative pad crops: use Slice)");
        var begin = new int[rank];
        var dims = (int[])s.Clone();
        for (int i = 0; i < axes.Length; i++)
        {
            int a = axes[i];
            if (a == 0 && _mode == BatchMode.PerSample && (pads[i] != 0 || pads[i + axes.Length] != 0))
                throw Error(node, "pads the batch dimension, which Scalpel.Build keeps per sample");
            begin[a] = (int)pads[i];
            dims[a] = checked(s[a] + (int)pads[i] + (int)pads[i + axes.Length]);
        }
        // PyTorch 1.13 writes a Pad of zeros before each AvgPool2d: no work, the same data.
        if (pads.All(p => p == 0)) return new ReshapeLayer(node, x, output, s);
        return new PadLayer(node, x, output, dims) { InputShape = s, Begin = begin, Value = value };
    }

    private Layer Resize(Node node, string output)
    {
        var x = RuntimeInput(node);
        var s = ShapeOf(x);
        int rank = s.Length;
        var mode = node.String("mode") ?? "nearest";
        if (mode is not ("nearest" or "linear"))
            throw Error(node, $"resizes in mode '{mode}'; Scalpel.Build supports modes 'nearest' and 'linear' (export with one of those)");
        bool linear = mode == "linear";
        bool upsample = node.OpType == "Upsample";
        var transform = upsample ? "asymmetric" : node.String("coordinate_transformation_mode") ?? "half_pixel";
        var rounding = upsample ? "floor" : node.String("nearest_mode") ?? "round_prefer_floor";
        if (node.Has("axes") || node.Int("antialias", 0) != 0)
            throw Error(node, "uses axes or antialias, which Scalpel.Build does not support");
        // Scales: Upsample-7 attribute, Upsample-9 and Resize-10 input 1, Resize-11+ input 2 (or sizes, input 3).
        float[]? scales = null;
        long[]? sizes = null;
        if (upsample && _graph.Opset < 9) scales = node.Attribute("scales")?.Floats.ToArray();
        else
        {
            int at = upsample || _graph.Opset < 11 ? 1 : 2;
            if (node.Input(at) is { } name && Shape.Size(ShapeOf(name)) > 0) scales = RequireConst(node, at, "scales").Data;
            if (!upsample && _graph.Opset >= 11 && node.Input(3) is not null) sizes = IntConst(node, 3, "sizes", batchFirst: true);
        }
        if ((scales?.Length ?? sizes?.Length) != rank) throw Error(node, $"needs {rank} scales or sizes");
        if (transform == "tf_crop_and_resize") throw Error(node, "uses coordinate_transformation_mode 'tf_crop_and_resize', which Scalpel.Build does not support");
        var dims = new int[rank];
        var axisScale = new float[rank];
        for (int d = 0; d < rank; d++)
        {
            float scale = axisScale[d] = sizes is not null ? (float)sizes[d] / s[d] : scales![d];
            double outSize = sizes is not null ? sizes[d] : Math.Floor(s[d] * (double)scale);
            if (!(scale > 0) || !(outSize >= 1 && outSize <= MaxActivationElements))
                throw Error(node, $"resizes axis {d} of size {s[d]} by {scale}; each output size must be from 1 to {MaxActivationElements}");
            dims[d] = (int)outSize;
            if (d == 0 && _mode == BatchMode.PerSample && dims[d] != s[d])
                throw Error(node, "resizes the batch dimension, which Scalpel.Build keeps per sample");
        }
        // The whole output is bounded before any index table is built.
        if (dims.Aggregate(1.0, (p, d) => p * d) > MaxActivationElements)
            throw Error(node, $"outputs shape {Shape.Format(dims)}; the output size must be at most {MaxActivationElements} elements");
        var source = new int[rank][];
        var upper = new int[]?[rank];
        var fraction = new float[]?[rank];
        for (int d = 0; d < rank; d++)
        {
            float scale = axisScale[d];
            // align_corners divides by the resized length: ONNX's reference takes input * scale unrounded, ONNX Runtime the
            // output size. They agree only where input * scale is whole; elsewhere the result depends on the runtime.
            if (transform == "align_corners" && sizes is null && s[d] * scale != dims[d])
                throw Error(node, $"uses align_corners with scale {scale} on an axis of {s[d]}, where ONNX's reference and ONNX Runtime disagree; export with sizes or a scale that gives a whole size");
            var at = Enumerable.Range(0, dims[d]).Select(j => Coordinate(node, j, s[d], dims[d], scale, transform)).ToArray();
            if (!linear || dims[d] == s[d] && at.Select((v, j) => v == j).All(b => b))
            {
                source[d] = linear ? Enumerable.Range(0, dims[d]).ToArray() : at.Select(v => Nearest(node, v, s[d], rounding)).ToArray();
                continue;
            }
            // Linear: the two input indices around the coordinate (clamped to the edges) and the weight of the upper one.
            source[d] = at.Select(v => (int)Math.Clamp(MathF.Floor(v), 0, s[d] - 1)).ToArray();
            upper[d] = at.Select(v => (int)Math.Clamp(MathF.Floor(v) + 1, 0, s[d] - 1)).ToArray();
            fraction[d] = at.Select(v => v - MathF.Floor(v)).ToArray();
        }
        var interpolated = Enumerable.Range(0, rank).Where(d => upper[d] is not null).ToArray();
        if (interpolated.Length > 2) throw Error(node, $"interpolates {interpolated.Length} axes linearly; Scalpel.Build supports up to 2 (bilinear)");
        return new ResizeLayer(node, x, output, dims)
        {
            InputShape = s, Source = source, Upper = linear ? upper : null, Fraction = linear ? fraction : null,
        };
    }

    /// <summary>The input coordinate output index j maps to, as ONNX Runtime computes it (in float).</summary>
    private float Coordinate(Node node, int j, int input, int output, float scale, string transform) =>
        transform switch
        {
            "half_pixel" => (j + 0.5f) / scale - 0.5f,
            "pytorch_half_pixel" => output > 1 ? (j + 0.5f) / scale - 0.5f : 0f,
            "asymmetric" => j / scale,
            "tf_half_pixel_for_nn" => (j + 0.5f) / scale,
            "align_corners" => output == 1 ? 0f : j * (input - 1) / (float)(output - 1),
            _ => throw Error(node, $"has coordinate_transformation_mode '{transform}'"),
        };

    /// <summary>The input index nearest coordinate x, by the node's nearest_mode, within the input.</summary>
    private int Nearest(Node node, float x, int input, string rounding)
    {
        double r = rounding switch
        {
            "round_prefer_floor" => x == MathF.Floor(x) + 0.5f ? MathF.Floor(x) : MathF.Round(x, MidpointRounding.AwayFromZero),
            "round_prefer_ceil" => MathF.Round(x, MidpointRounding.AwayFromZero),
            "floor" => MathF.Floor(x),
            "ceil" => MathF.Ceiling(x),
            _ => throw Error(node, $"has nearest_mode '{rounding}'"),
        };
        return (int)Math.Clamp(r, 0, input - 1);
    }

    /// <summary>ReduceMean or ReduceMax over every spatial axis of an NC... tensor: global average or max pooling.</summary>
    private Layer Reduce(Node node, string output)
    {
        var x = RuntimeInput(node);
        var s = ShapeOf(x);
        var raw = _graph.Opset < 18 ? node.Ints("axes") : node.Input(1) is null ? null : IntConst(node, 1, "axes");
        var axes = (raw ?? Enumerable.Range(0, s.Length).Select(i => (long)i).ToArray()).Select(a => NormalizeAxis(a, s.Length, node, Src)).Order().ToArray();
        if (s.Length < 3 || !axes.SequenceEqual(Enumerable.Range(2, s.Length - 2)))
            throw Error(node, $"reduces axes [{string.Join(",", axes)}] of {Shape.Format(s)}; Scalpel.Build supports {node.OpType} over all spatial axes (axes 2 and up of an NC... tensor), which it runs as a global pool");
        bool keep = node.Int("keepdims", 1) != 0;
        var dims = keep ? s.Select((d, i) => i < 2 ? d : 1).ToArray() : s[..2];
        return new GlobalPoolLayer(node, x, output, dims) { IsMax = node.OpType == "ReduceMax", Planes = s[0] * s[1], Spatial = Shape.Size(s, 2, s.Length) };
    }
}
