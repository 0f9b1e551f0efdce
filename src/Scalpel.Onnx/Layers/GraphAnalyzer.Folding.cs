using Scalpel.Onnx.Proto;

namespace Scalpel.Onnx.Layers;

/// <summary>
/// A tensor known at analysis time: integers (shapes, indices, axes; int64, int32 and bool alike) or floats.
/// <see cref="Batch"/> marks the integer elements that hold the symbolic batch size (1 when analysed per sample).
/// </summary>
internal sealed record Known(int[] Dims, long[]? Ints, float[]? Floats, bool[]? Batch = null)
{
    public int Count => Ints?.Length ?? Floats!.Length;
    public bool IsInt => Ints is not null;
    public bool HasBatch => Batch is not null && Batch.Any(b => b);
    public double this[int i] => Ints is not null ? (double)Ints[i] : Floats![i];

    /// <summary>Output element i is input element from[i] (a gather, slice, transpose, concat part...).</summary>
    public Known Select(int[] dims, int[] from) =>
        new(dims, Ints is null ? null : Array.ConvertAll(from, i => Ints[i]), Floats is null ? null : Array.ConvertAll(from, i => Floats[i]),
            Batch is null ? null : Array.ConvertAll(from, i => Batch[i]));

    public Known WithDims(int[] dims) => this with { Dims = dims };

    public Tensor ToTensor(string name) => new(name, Dims, Floats ?? Array.ConvertAll(Ints!, v => (float)v));
}

/// <summary>
/// Constant folding: a node whose inputs are all known (initializers, Constant nodes, earlier folds, or for Shape and
/// Size any tensor, as every shape is static) is evaluated once here and leaves no layer. This removes the shape
/// subgraphs exporters write (Shape, Gather, Unsqueeze, Concat feeding a Reshape) and static arithmetic on constants.
/// The ONNX model itself keeps those nodes: ONNX Runtime evaluates them as before.
/// </summary>
public sealed partial class GraphAnalyzer
{
    /// <summary>Operators Scalpel.Build only evaluates at analysis time: their inputs must be known.</summary>
    public static readonly IReadOnlyList<string> FoldedOperators =
    [
        "Shape", "Size", "Cast", "Range", "ConstantOfShape", "Expand", "Equal", "Where", "Neg", "Abs", "Floor", "Ceil",
        "Reciprocal", "Min", "Max",
    ];

    /// <summary>
    /// Largest tensor a fold may create beyond the size of its inputs, in elements (Range, ConstantOfShape, Expand, a
    /// broadcast, a Gather of more indices than rows): shape arithmetic is small, a hostile Range is not. Folds that
    /// only move or convert values (Reshape, Transpose, Slice, Concat, Cast of a weight) are bounded by their inputs.
    /// </summary>
    public const int MaxFoldedElements = 1 << 24;

    private readonly Dictionary<string, Known> _known = new(StringComparer.Ordinal);

    private bool IsKnown(string name) => _known.ContainsKey(name) || _folded.ContainsKey(name) || _graph.IsConstant(name);

    private Known KnownOf(string name)
    {
        if (_known.TryGetValue(name, out var k)) return k;
        if (_folded.TryGetValue(name, out var t)) return new Known(t.Dims, null, t.Data);
        var proto = _graph.ConstantProto(name);
        return (TensorProto.Types.DataType)proto.DataType is TensorProto.Types.DataType.Int64 or TensorProto.Types.DataType.Int32
            ? new Known(TensorReader.Dims(proto, Src), _graph.IntConstant(name), null)
            : new Known(_graph.Constant(name).Dims, null, _graph.Constant(name).Data);
    }

    /// <summary>Evaluates the node when it can be (its output becomes known); false when it is runtime work.</summary>
    private bool TryFold(Node node)
    {
        var inputs = node.Inputs.Where(i => i.Length > 0).ToList();
        bool foldable = node.OpType is "Shape" or "Size" || (inputs.Count > 0 && inputs.All(IsKnown)) || node.OpType == "ConstantOfShape" && inputs.All(IsKnown);
        if (!foldable || node.Outputs.Count(o => o.Length > 0) != 1) return false;
        if (Fold(node) is not { } value) return false;
        _known[node.Outputs[0]] = value;
        return true;
    }

    private Known? Fold(Node node)
    {
        Known In(int i) => KnownOf(node.Input(i) ?? throw Error(node, $"is missing input {i}"));
        switch (node.OpType)
        {
            case "Shape":
            {
                var name = node.Input(0) ?? throw Error(node, "has no input");
                var dims = ShapeOf(name);
                long rank = dims.Length;
                long start = Math.Clamp(node.Int("start", 0) is var s && s < 0 ? s + rank : s, 0, rank);
                long end = Math.Clamp(node.Int("end", rank) is var e && e < 0 ? e + rank : e, 0, rank);
                bool batch = BatchDependent(name);
                var values = dims[(int)start..(int)Math.Max(start, end)];
                return new Known([values.Length], values.Select(d => (long)d).ToArray(), null, values.Select((_, i) => batch && start + i == 0).ToArray());
            }
            case "Size":
            {
                var name = node.Input(0) ?? throw Error(node, "has no input");
                return new Known([], [Shape.Size(ShapeOf(name))], null, [BatchDependent(name)]);
            }
            case "Identity": case "Dropout": return In(0);
            case "Reshape": return In(0).WithDims(ReshapeShape(node, ShapeOf(node.Inputs[0])));
            case "Flatten": return In(0).WithDims(FlattenShape(node, ShapeOf(node.Inputs[0])));
            case "Squeeze": return In(0).WithDims(SqueezeShape(node, ShapeOf(node.Inputs[0])));
            case "Unsqueeze": return In(0).WithDims(UnsqueezeShape(node, ShapeOf(node.Inputs[0])));
            case "Cast": return Cast(node, In(0));
            case "Concat": return FoldConcat(node);
            case "Gather": return FoldGather(node, In(0), In(1));
            case "Transpose":
            {
                var x = In(0);
                var perm = Permutation(node, x.Dims.Length);
                var (dims, strides) = TransposeStrides(x.Dims, perm);
                return x.Select(dims, Positions(dims, 0, strides));
            }
            case "Slice":
            {
                var x = In(0);
                var (start, step, count) = SliceRanges(node, x.Dims);
                return x.Select(count, Positions(count, Offset(start, x.Dims), ScaledStrides(step, x.Dims)));
            }
            case "Expand":
            {
                var x = In(0);
                var shape = DimsOf(node, IntConst(node, 1, "shape"));
                var dims = Shape.Broadcast(x.Dims, shape) ?? throw Error(node, $"cannot expand {Shape.Format(x.Dims)} to {Shape.Format(shape)}");
                return x.Select(dims, Positions(RequireFoldSize(node, dims), 0, Shape.BroadcastStrides(x.Dims, dims)));
            }
            case "ConstantOfShape":
            {
                var dims = node.Input(0) is null ? [] : DimsOf(node, IntConst(node, 0, "shape"));
                int n = Shape.Size(RequireFoldSize(node, dims));
                var value = node.Attribute("value")?.T;
                if (value is null || (TensorProto.Types.DataType)value.DataType == TensorProto.Types.DataType.Float)
                    return new Known(dims, null, Enumerable.Repeat(value is null ? 0f : TensorReader.ReadFloat(value, _graph.Model).Data.Single(), n).ToArray());
                return new Known(dims, Enumerable.Repeat(TensorReader.ReadInt64(value, _graph.Model).Single(), n).ToArray(), null);
            }
            case "Range":
            {
                var (start, limit, delta) = (Scalar(node, In(0)), Scalar(node, In(1)), Scalar(node, In(2)));
                if (delta == 0) throw Error(node, "has a delta of 0");
                double count = Math.Max(Math.Ceiling((limit - start) / delta), 0);
                if (count > MaxFoldedElements)
                    throw Error(node, $"computes a range of {count} elements; Scalpel.Build folds constants of at most {MaxFoldedElements}");
                var values = Enumerable.Range(0, (int)count).Select(i => start + i * delta).ToArray();
                return In(0).IsInt
                    ? new Known([values.Length], values.Select(v => (long)v).ToArray(), null)
                    : new Known([values.Length], null, values.Select(v => (float)v).ToArray());
            }
            case "Add": case "Sub": case "Mul": case "Div": case "Min": case "Max": case "Equal": case "Pow":
                return Elementwise(node, [.. Enumerable.Range(0, node.Inputs.Count).Select(In)], node.OpType);
            case "Where": return Elementwise(node, [In(0), In(1), In(2)], "Where");
            case "Neg": case "Abs": case "Floor": case "Ceil": case "Reciprocal": case "Sqrt":
                return Elementwise(node, [In(0)], node.OpType);
            default: return null;
        }
    }

    /// <summary>Whether a runtime tensor's dimension 0 is the symbolic batch (a per-sample model).</summary>
    private bool BatchDependent(string name) => _mode == BatchMode.PerSample && !IsKnown(name);

    private double Scalar(Node node, Known k) =>
        k.Count == 1 && !k.HasBatch ? k[0] : throw Error(node, $"needs a scalar, got shape {Shape.Format(k.Dims)}");

    private int[] DimsOf(Node node, long[] values)
    {
        if (values.Any(v => v < 0 || v > MaxFoldedElements)) throw Error(node, $"has a shape [{string.Join(",", values)}] with a negative or huge size");
        return values.Select(v => (int)v).ToArray();
    }

    private int[] RequireFoldSize(Node node, int[] dims)
    {
        if (dims.Aggregate(1.0, (p, d) => p * d) > MaxFoldedElements)
            throw Error(node, $"computes a constant of shape {Shape.Format(dims)}; Scalpel.Build folds constants of at most {MaxFoldedElements} elements");
        return dims;
    }

    private Known Cast(Node node, Known x)
    {
        var to = (TensorProto.Types.DataType)node.Int("to", 0);
        switch (to)
        {
            case TensorProto.Types.DataType.Float or TensorProto.Types.DataType.Double or TensorProto.Types.DataType.Float16:
                if (x.HasBatch) throw Error(node, "casts the symbolic batch size to a float");
                return new Known(x.Dims, null, x.Floats ?? Array.ConvertAll(x.Ints!, v => (float)v));
            case TensorProto.Types.DataType.Int64 or TensorProto.Types.DataType.Int32 or TensorProto.Types.DataType.Int8 or TensorProto.Types.DataType.Uint8
                or TensorProto.Types.DataType.Int16 or TensorProto.Types.DataType.Uint16 or TensorProto.Types.DataType.Uint32:
                return x with { Ints = x.Ints ?? Array.ConvertAll(x.Floats!, v => (long)v), Floats = null };
            case TensorProto.Types.DataType.Bool:
                return new Known(x.Dims, Enumerable.Range(0, x.Count).Select(i => x[i] != 0 ? 1L : 0L).ToArray(), null);
            default: throw Error(node, $"casts to {to}, which Scalpel.Build does not fold");
        }
    }

    private Known FoldConcat(Node node)
    {
        var parts = node.Inputs.Where(i => i.Length > 0).Select(KnownOf).ToList();
        if (parts.Count == 0) throw Error(node, "has no inputs");
        int rank = parts[0].Dims.Length;
        int axis = NormalizeAxis(node.Int("axis", 0), rank, node, Src);
        if (parts.Any(p => p.Dims.Length != rank || p.IsInt != parts[0].IsInt || Enumerable.Range(0, rank).Any(d => d != axis && p.Dims[d] != parts[0].Dims[d])))
            throw Error(node, "concatenates mismatched constants");
        var dims = (int[])parts[0].Dims.Clone();
        dims[axis] = parts.Sum(p => p.Dims[axis]);
        // Concatenate as one flat input: each part's rows follow each other along the axis.
        int outer = Shape.Size(dims, 0, axis), inner = Shape.Size(dims, axis + 1, rank);
        var all = new Known([parts.Sum(p => p.Count)],
            parts[0].IsInt ? parts.SelectMany(p => p.Ints!).ToArray() : null,
            parts[0].IsInt ? null : parts.SelectMany(p => p.Floats!).ToArray(),
            parts.Any(p => p.Batch is not null) ? parts.SelectMany(p => p.Batch ?? new bool[p.Count]).ToArray() : null);
        var from = new List<int>(all.Count);
        for (int o = 0; o < outer; o++)
            for (int p = 0, start = 0; p < parts.Count; start += parts[p].Count, p++)
            {
                int row = parts[p].Dims[axis] * inner;
                for (int i = 0; i < row; i++) from.Add(start + o * row + i);
            }
        return all.Select(dims, [.. from]);
    }

    private Known FoldGather(Node node, Known data, Known indices)
    {
        if (!indices.IsInt || indices.HasBatch) throw Error(node, "needs constant integer indices");
        int rank = data.Dims.Length;
        int axis = NormalizeAxis(node.Int("axis", 0), rank, node, Src);
        int size = data.Dims[axis];
        var index = indices.Ints!.Select(v => v < -size || v >= size ? throw Error(node, $"has index {v} for a dimension of {size}") : (int)(v < 0 ? v + size : v)).ToArray();
        int[] dims = [.. data.Dims[..axis], .. indices.Dims, .. data.Dims[(axis + 1)..]];
        if (index.Length > size) RequireFoldSize(node, dims); // more indices than rows: the output can outgrow the input
        int outer = Shape.Size(data.Dims, 0, axis), inner = Shape.Size(data.Dims, axis + 1, rank);
        var from = new int[checked(outer * index.Length * inner)];
        int at = 0;
        for (int o = 0; o < outer; o++)
            foreach (var k in index)
                for (int i = 0; i < inner; i++) from[at++] = (o * size + k) * inner + i;
        return data.Select(dims, from);
    }

    /// <summary>Broadcasting arithmetic on known tensors: integer when every input is, else float.</summary>
    private Known Elementwise(Node node, Known[] x, string op)
    {
        var dims = x.Skip(1).Aggregate(x[0].Dims, (d, k) => Shape.Broadcast(d, k.Dims) ?? throw Error(node, $"cannot broadcast {Shape.Format(d)} with {Shape.Format(k.Dims)}"));
        if (dims.Aggregate(1.0, (p, d) => p * d) > x.Max(k => k.Count)) RequireFoldSize(node, dims); // broadcasting grew the output
        var from = x.Select(k => Positions(dims, 0, Shape.BroadcastStrides(k.Dims, dims))).ToArray();
        int n = Shape.Size(dims);
        bool ints = op == "Where" ? x[1].IsInt && x[2].IsInt : x.All(k => k.IsInt);
        // The batch size may pass through arithmetic (a Reshape then checks where it lands); it may not become a float.
        bool[]? batch = x.Any(k => k.HasBatch) ? new bool[n] : null;
        if (batch is not null && (!ints || op is "Equal" or "Where")) throw Error(node, "computes with the symbolic batch size");
        // Integers are computed in int64 (shape values such as INT64_MAX must stay exact), floats in double then rounded.
        var ints64 = new long[ints || op == "Equal" ? n : 0];
        var floats = new float[ints || op == "Equal" ? 0 : n];
        for (int i = 0; i < n; i++)
        {
            if (ints)
            {
                long a = x[0].Ints![from[0][i]], b = x.Length > 1 ? x[1].Ints![from[1][i]] : 0;
                ints64[i] = op switch
                {
                    "Add" => a + b, "Sub" => a - b, "Mul" => a * b, "Min" => Math.Min(a, b), "Max" => Math.Max(a, b),
                    "Pow" => (long)Math.Pow(a, b), "Div" => b == 0 ? throw Error(node, "divides an integer by zero") : a / b,
                    "Equal" => a == b ? 1 : 0, "Where" => a != 0 ? b : x[2].Ints![from[2][i]],
                    "Neg" => -a, "Abs" => Math.Abs(a), "Floor" or "Ceil" => a,
                    _ => throw Error(node, $"cannot fold {op} on integers"),
                };
            }
            else
            {
                double a = x[0][from[0][i]], b = x.Length > 1 ? x[1][from[1][i]] : 0;
                double v = op switch
                {
                    "Add" => a + b, "Sub" => a - b, "Mul" => a * b, "Min" => Math.Min(a, b), "Max" => Math.Max(a, b), "Pow" => Math.Pow(a, b),
                    "Div" => a / b, "Equal" => a == b ? 1 : 0, "Where" => a != 0 ? b : x[2][from[2][i]],
                    "Neg" => -a, "Abs" => Math.Abs(a), "Floor" => Math.Floor(a), "Ceil" => Math.Ceiling(a), "Reciprocal" => 1 / a, "Sqrt" => Math.Sqrt(a),
                    _ => throw Error(node, $"cannot fold {op}"),
                };
                if (op == "Equal") ints64[i] = (long)v; else floats[i] = (float)v;
            }
            if (batch is not null) batch[i] = Enumerable.Range(0, x.Length).Any(j => x[j].Batch is { } mask && mask[from[j][i]]);
        }
        return ints || op == "Equal" ? new Known(dims, ints64, null, op == "Equal" ? null : batch) : new Known(dims, null, floats);
    }

    // ---- index arithmetic shared with the runtime Transpose, Slice and Split layers ---------------------------

    /// <summary>For each element of <paramref name="dims"/> (row-major), offset + sum_d index_d * strides[d].</summary>
    private static int[] Positions(int[] dims, int offset, int[] strides)
    {
        var result = new int[Shape.Size(dims)];
        var index = new int[dims.Length];
        for (int i = 0; i < result.Length; i++)
        {
            int at = offset;
            for (int d = 0; d < dims.Length; d++) at += index[d] * strides[d];
            result[i] = at;
            for (int d = dims.Length - 1; d >= 0 && ++index[d] == dims[d]; d--) index[d] = 0;
        }
        return result;
    }

    private static int Offset(int[] start, int[] dims) => start.Zip(Shape.Strides(dims), (s, t) => s * t).Sum();

    private static int[] ScaledStrides(int[] step, int[] dims) => step.Zip(Shape.Strides(dims), (s, t) => s * t).ToArray();

    /// <summary>A transpose's output dims and, per output axis, the input stride it walks.</summary>
    internal static (int[] Dims, int[] Strides) TransposeStrides(int[] dims, int[] perm)
    {
        var strides = Shape.Strides(dims);
        return (perm.Select(p => dims[p]).ToArray(), perm.Select(p => strides[p]).ToArray());
    }
}
