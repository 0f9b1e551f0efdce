using Scalpel.Onnx.Proto;

namespace Scalpel.Onnx.Layers;

/// <summary>Element-wise and per-row layers: Add/Sub/Mul, activations, Softmax, LRN.</summary>
public sealed partial class GraphAnalyzer
{
    private Operand Operand(Node node, int index)
    {
        var name = node.Input(index) ?? throw Error(node, $"is missing input {index}");
        return IsConst(name) ? new Operand(null, Const(name), Const(name).Dims) : new Operand(name, null, ShapeOf(name));
    }

    private Layer Binary(Node node, string output)
    {
        var a = Operand(node, 0);
        var b = Operand(node, 1);
        var shape = Shape.Broadcast(a.Shape, b.Shape)
            ?? throw Error(node, $"cannot broadcast {Shape.Format(a.Shape)} with {Shape.Format(b.Shape)}");
        var op = Enum.Parse<BinaryOp>(node.OpType);
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
        var (alpha, beta) = node.OpType switch
        {
            "HardSigmoid" => (node.Float("alpha", 0.2f), node.Float("beta", 0.5f)),
            "Pow" => ((float)Scalar(node, node.Input(1) is { } e && IsKnown(e) ? KnownOf(e) : throw Error(node, "has a computed exponent; Scalpel.Build supports a constant one")), 0f),
            _ => (node.Float("alpha", 0.01f), 0f),
        };
        return new UnaryLayer(node, x, output, s)
        {
            Function = Enum.Parse<UnaryFunction>(node.OpType), Alpha = alpha, Beta = beta, Min = min, Max = max,
        };
    }

    private float Scalar(Tensor t, Node node, string what) =>
        t.Data.Length == 1 ? t.Data[0] : throw Error(node, $"has a {what} of shape {Shape.Format(t.Dims)}; it must be a scalar");


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
