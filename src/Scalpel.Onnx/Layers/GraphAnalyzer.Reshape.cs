using Scalpel.Onnx.Proto;

namespace Scalpel.Onnx.Layers;

/// <summary>Layers that keep the data and change the shape (Flatten, Reshape, Squeeze, Unsqueeze, Identity, Dropout), and Concat.</summary>
public sealed partial class GraphAnalyzer
{
    private Layer Reshape(Node node, string output)
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
        var target = _graph.Opset < 5 ? node.Ints("shape") ?? throw Error(node, "has no shape") : IntConst(node, 1, "shape", batchFirst: true);
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
        return new ConcatLayer(node, operands.Select(o => o.Name).OfType<string>().ToArray(), output, shape) { Operands = operands, Axis = axis };
    }
}
