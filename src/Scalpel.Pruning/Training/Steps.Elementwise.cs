using System.Numerics.Tensors;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;

namespace Scalpel.Pruning.Training;

internal sealed class ScaleShiftStep(ScaleShiftLayer b, int input, int output) : Step
{
    public override void Forward(Workspace ws)
    {
        var x = ws.Values[input];
        var y = ws.Values[output];
        for (int i = 0; i < y.Length; i++) { int ch = i / b.Spatial % b.C; y[i] = x[i] * b.Scale[ch] + b.Shift[ch]; }
    }

    public override void Backward(Workspace ws)
    {
        var dy = ws.Gradients[output];
        var dx = ws.Gradients[input];
        for (int i = 0; i < dy.Length; i++) dx[i] += dy[i] * b.Scale[i / b.Spatial % b.C];
    }
}

/// <summary>Add, Sub, Mul with ONNX broadcasting between runtime tensors and constants.</summary>
internal sealed class BinaryStep : Step
{
    private readonly BinaryLayer _b;
    private readonly int _a, _bId, _output; // -1: constant
    private readonly int[] _ia, _ib;

    public BinaryStep(BinaryLayer b, Network net, int output)
    {
        _b = b;
        _output = output;
        _a = b.A.Name is null ? -1 : net.IdOf(b.A.Name);
        _bId = b.B.Name is null ? -1 : net.IdOf(b.B.Name);
        _ia = Map(b.A.Constant?.Dims ?? b.A.Shape, b.OutputShape);
        _ib = Map(b.B.Constant?.Dims ?? b.B.Shape, b.OutputShape);
    }

    private static int[] Map(int[] from, int[] to)
    {
        var strides = Shape.BroadcastStrides(from, to);
        var map = new int[Shape.Size(to)];
        var index = new int[to.Length];
        for (int i = 0; i < map.Length; i++)
        {
            for (int d = 0; d < to.Length; d++) map[i] += index[d] * strides[d];
            for (int d = to.Length - 1; d >= 0 && ++index[d] == to[d]; d--) index[d] = 0;
        }
        return map;
    }

    private float[] A(Workspace ws) => _a < 0 ? _b.A.Constant!.Data : ws.Values[_a];
    private float[] B(Workspace ws) => _bId < 0 ? _b.B.Constant!.Data : ws.Values[_bId];

    public override void Forward(Workspace ws)
    {
        float[] a = A(ws), b = B(ws), y = ws.Values[_output];
        for (int i = 0; i < y.Length; i++)
        {
            float x = a[_ia[i]], z = b[_ib[i]];
            y[i] = _b.Op switch { BinaryOp.Add => x + z, BinaryOp.Sub => x - z, _ => x * z };
        }
    }

    public override void Backward(Workspace ws)
    {
        float[] a = A(ws), b = B(ws), dy = ws.Gradients[_output];
        for (int i = 0; i < dy.Length; i++)
        {
            float g = dy[i];
            if (_a >= 0) ws.Gradients[_a][_ia[i]] += _b.Op == BinaryOp.Mul ? g * b[_ib[i]] : g;
            if (_bId >= 0) ws.Gradients[_bId][_ib[i]] += _b.Op switch { BinaryOp.Mul => g * a[_ia[i]], BinaryOp.Sub => -g, _ => g };
        }
    }
}

internal sealed class UnaryStep(UnaryLayer u, int input, int output) : Step
{
    public override void Forward(Workspace ws)
    {
        var x = ws.Values[input];
        var y = ws.Values[output];
        switch (u.Function)
        {
            case UnaryFunction.Relu: TensorPrimitives.Max(x, 0f, y); break;
            case UnaryFunction.Sigmoid: TensorPrimitives.Sigmoid(x, y); break;
            case UnaryFunction.Tanh: TensorPrimitives.Tanh(x, y); break;
            case UnaryFunction.LeakyRelu: for (int i = 0; i < y.Length; i++) y[i] = x[i] >= 0f ? x[i] : u.Alpha * x[i]; break;
            default: for (int i = 0; i < y.Length; i++) y[i] = MathF.Min(MathF.Max(x[i], u.Min), u.Max); break;
        }
    }

    public override void Backward(Workspace ws)
    {
        var x = ws.Values[input];
        var y = ws.Values[output];
        var dy = ws.Gradients[output];
        var dx = ws.Gradients[input];
        for (int i = 0; i < dy.Length; i++)
            dx[i] += dy[i] * u.Function switch
            {
                UnaryFunction.Relu => x[i] > 0f ? 1f : 0f,
                UnaryFunction.Sigmoid => y[i] * (1f - y[i]),
                UnaryFunction.Tanh => 1f - y[i] * y[i],
                UnaryFunction.LeakyRelu => x[i] >= 0f ? 1f : u.Alpha,
                _ => x[i] > u.Min && x[i] < u.Max ? 1f : 0f,
            };
    }
}

internal sealed class ConcatStep : Step
{
    private readonly (int Id, float[]? Constant, int Block)[] _parts;
    private readonly int _outer, _output;

    public ConcatStep(ConcatLayer c, Network net, int output)
    {
        _output = output;
        _outer = Shape.Size(c.OutputShape[..c.Axis]);
        _parts = c.Operands.Select(o => (o.Name is null ? -1 : net.IdOf(o.Name), o.Constant?.Data, Shape.Size(o.Shape[c.Axis..]))).ToArray();
    }

    public override void Forward(Workspace ws)
    {
        var y = ws.Values[_output];
        int total = _parts.Sum(p => p.Block), offset = 0;
        foreach (var (id, constant, block) in _parts)
        {
            var src = constant ?? ws.Values[id];
            for (int o = 0; o < _outer; o++) src.AsSpan(o * block, block).CopyTo(y.AsSpan(o * total + offset, block));
            offset += block;
        }
    }

    public override void Backward(Workspace ws)
    {
        var dy = ws.Gradients[_output];
        int total = _parts.Sum(p => p.Block), offset = 0;
        foreach (var (id, _, block) in _parts)
        {
            if (id >= 0)
                for (int o = 0; o < _outer; o++)
                    TensorPrimitives.Add(ws.Gradients[id].AsSpan(o * block, block), dy.AsSpan(o * total + offset, block), ws.Gradients[id].AsSpan(o * block, block));
            offset += block;
        }
    }
}

internal sealed class SoftmaxStep(SoftmaxLayer s, int input, int output) : Step
{
    public override void Forward(Workspace ws)
    {
        var x = ws.Values[input];
        var y = ws.Values[output];
        for (int o = 0; o < s.Outer; o++)
            for (int i = 0; i < s.Inner; i++)
            {
                int at = o * s.AxisSize * s.Inner + i;
                float max = float.NegativeInfinity, sum = 0f;
                for (int a = 0; a < s.AxisSize; a++) max = MathF.Max(max, x[at + a * s.Inner]);
                for (int a = 0; a < s.AxisSize; a++) sum += MathF.Exp(x[at + a * s.Inner] - max);
                for (int a = 0; a < s.AxisSize; a++)
                    y[at + a * s.Inner] = s.Log ? x[at + a * s.Inner] - max - MathF.Log(sum) : MathF.Exp(x[at + a * s.Inner] - max) / sum;
            }
    }

    public override void Backward(Workspace ws)
    {
        var y = ws.Values[output];
        var dy = ws.Gradients[output];
        var dx = ws.Gradients[input];
        for (int o = 0; o < s.Outer; o++)
            for (int i = 0; i < s.Inner; i++)
            {
                int at = o * s.AxisSize * s.Inner + i;
                float dot = 0f;
                for (int a = 0; a < s.AxisSize; a++) dot += s.Log ? dy[at + a * s.Inner] : dy[at + a * s.Inner] * y[at + a * s.Inner];
                for (int a = 0; a < s.AxisSize; a++)
                {
                    int k = at + a * s.Inner;
                    dx[k] += s.Log ? dy[k] - MathF.Exp(y[k]) * dot : y[k] * (dy[k] - dot);
                }
            }
    }
}
