using System.Numerics.Tensors;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;

namespace Scalpel.Pruning.Training;

// Forward and backward of each layer kind: Dense and Conv over a whole batch at once, the others one sample at a time. Backward adds into the input gradients (a
// tensor may feed several layers) and into the workspace's parameter gradients.

/// <summary>
/// A learned gate per output channel, after the activation: y = act(z) g. Forward keeps act(z) so backward can
/// give dg = sum dy act(z) and pass dy g on.
/// </summary>
internal static class Gate
{
    public static void Apply(Workspace ws, Parameter? gate, float[] y, int channels)
    {
        if (gate is null) return;
        var raw = ws.Buffer(gate, y.Length);
        y.CopyTo(raw, 0);
        int per = y.Length / channels;
        for (int c = 0; c < channels; c++) TensorPrimitives.Multiply(y.AsSpan(c * per, per), gate.Value[c], y.AsSpan(c * per, per));
    }

    /// <summary>
    /// Adds the gate gradient and returns act(z) with dLoss/d act(z); without a gate, the layer's own output
    /// and its gradient, uncopied.
    /// </summary>
    public static (float[] Y, float[] Dy) Backward(Workspace ws, Parameter? gate, float[] y, float[] dy, int channels)
    {
        if (gate is null) return (y, dy);
        var raw = ws.Buffer(gate, 0);
        var scaled = ws.Buffer(raw, dy.Length);
        var dg = ws.GradientOf(gate);
        int per = y.Length / channels;
        for (int c = 0; c < channels; c++)
        {
            dg[c] += TensorPrimitives.Dot(dy.AsSpan(c * per, per), raw.AsSpan(c * per, per));
            TensorPrimitives.Multiply(dy.AsSpan(c * per, per), gate.Value[c], scaled.AsSpan(c * per, per));
        }
        return (raw, scaled);
    }
}

/// <summary>
/// Dense layers over a batch: the batch's rows (samples × M) form one matrix X, and Z = X Wᵀ, dW += dZᵀ X and
/// dX = dZ W are matrix products that read the weights once per batch rather than once per sample.
/// </summary>
internal sealed class DenseStep(DenseLayer d, int input, int output, Parameter weight, Parameter? bias, Parameter? gate = null) : Step
{
    private readonly object _x = new(), _z = new(), _zt = new(), _dx = new();

    public override void Forward(Workspace ws) => Forward(ws.Alone, 1);
    public override void Backward(Workspace ws) => Backward(ws.Alone, 1);

    public override void Forward(Workspace[] batch, int count)
    {
        int rows = batch.Length * d.InputRows, r = count * d.InputRows;
        var x = batch[0].Buffer(_x, rows * d.K);
        var z = batch[0].Buffer(_z, rows * d.N);
        for (int s = 0; s < count; s++)
        {
            var src = batch[s].Values[input];
            for (int m = 0; m < d.InputRows; m++)
            {
                var row = x.AsSpan((s * d.InputRows + m) * d.K, d.K);
                if (d.TransposeInput) for (int k = 0; k < d.K; k++) row[k] = src[k * d.InputRows + m];
                else src.AsSpan(m * d.K, d.K).CopyTo(row);
                var zRow = z.AsSpan((s * d.InputRows + m) * d.N, d.N);
                if (d.Bias is null) zRow.Clear();
                else d.Bias.CopyTo(zRow);
                if (d.BiasFull is not null) TensorPrimitives.Add(zRow, d.BiasFull.AsSpan(m * d.N, d.N), zRow);
            }
        }
        Gemm.NT(r, d.N, d.K, x, d.K, weight.Value, d.K, z, d.N);
        for (int s = 0; s < count; s++)
        {
            var y = batch[s].Values[output];
            var zs = z.AsSpan(s * d.InputRows * d.N, d.InputRows * d.N);
            if (d.Activation == Activation.Relu) TensorPrimitives.Max(zs, 0f, y);
            else zs.CopyTo(y);
            Gate.Apply(batch[s], gate, y, d.N);
        }
    }

    public override void Backward(Workspace[] batch, int count)
    {
        int rows = batch.Length * d.InputRows, r = count * d.InputRows;
        var x = batch[0].Buffer(_x, 0); // filled by Forward of this batch
        var dz = batch[0].Buffer(_z, 0); // Z is no longer needed: dZ takes its place
        for (int s = 0; s < count; s++)
        {
            var (y, dy) = Gate.Backward(batch[s], gate, batch[s].Values[output], batch[s].Gradients[output], d.N);
            var dzs = dz.AsSpan(s * d.InputRows * d.N, d.InputRows * d.N);
            dy.AsSpan(0, dzs.Length).CopyTo(dzs);
            if (d.Activation == Activation.Relu)
                for (int i = 0; i < dzs.Length; i++) if (y[i] <= 0f) dzs[i] = 0f;
        }
        if (bias is not null)
        {
            var db = batch[0].GradientOf(bias);
            for (int i = 0; i < r; i++) TensorPrimitives.Add(db, dz.AsSpan(i * d.N, d.N), db);
        }
        var dzt = batch[0].Buffer(_zt, rows * d.N);
        Gemm.Transpose(r, d.N, dz, d.N, dzt, r);
        Gemm.NN(d.N, d.K, r, dzt, r, x, d.K, batch[0].GradientOf(weight), d.K);
        if (input == batch[0].Net.InputId && !batch[0].Net.ComputesInputGradient) return;
        var dx = batch[0].Buffer(_dx, rows * d.K);
        Array.Clear(dx, 0, r * d.K);
        Gemm.NN(r, d.K, d.N, dz, d.N, weight.Value, d.K, dx, d.K);
        for (int s = 0; s < count; s++)
        {
            var g = batch[s].Gradients[input];
            for (int m = 0; m < d.InputRows; m++)
            {
                var row = dx.AsSpan((s * d.InputRows + m) * d.K, d.K);
                if (d.TransposeInput) for (int k = 0; k < d.K; k++) g[k * d.InputRows + m] += row[k];
                else TensorPrimitives.Add(g.AsSpan(m * d.K, d.K), row, g.AsSpan(m * d.K, d.K));
            }
        }
    }
}

/// <summary>
/// Convolution over a batch as one matrix product: im2col of every sample side by side (columns: samples ×
/// output positions), Z = W · Col per group, dW += dZ · Colᵀ and dCol = Wᵀ · dZ, then col2im.
/// </summary>
internal sealed class ConvStep(ConvLayer c, int input, int output, Parameter weight, Parameter? bias, Parameter? gate = null) : Step
{
    private readonly int _cg = c.C / c.Group, _mg = c.M / c.Group, _kk = c.C / c.Group * c.Window.KH * c.Window.KW, _p = c.Window.OH * c.Window.OW;
    private readonly object _col = new(), _z = new(), _dcol = new(), _wt = new();

    /// <summary>
    /// For each patch row of a group (input channel, kernel row, kernel column) and output position: the input
    /// value it reads, as an index into the group's input channels, or -1 in the padding.
    /// </summary>
    private readonly int[] _gather = Gather(c);

    private static int[] Gather(ConvLayer c)
    {
        int cg = c.C / c.Group, p = c.Window.OH * c.Window.OW;
        var map = new int[cg * c.Window.KH * c.Window.KW * p];
        for (int ch = 0; ch < cg; ch++)
            for (int i = 0; i < c.Window.KH; i++)
                for (int j = 0; j < c.Window.KW; j++)
                    for (int oh = 0; oh < c.Window.OH; oh++)
                        for (int ow = 0; ow < c.Window.OW; ow++)
                        {
                            int ih = oh * c.Window.StrideH - c.Window.PadTop + i * c.Window.DilationH, iw = ow * c.Window.StrideW - c.Window.PadLeft + j * c.Window.DilationW;
                            bool inside = (uint)ih < (uint)c.Window.H && (uint)iw < (uint)c.Window.W;
                            map[((ch * c.Window.KH + i) * c.Window.KW + j) * p + oh * c.Window.OW + ow] = inside ? (ch * c.Window.H + ih) * c.Window.W + iw : -1;
                        }
        return map;
    }

    /// <summary>
    /// Gathers one sample's input image into its columns (zero in the padding, im2col), or scatters the columns back
    /// by adding into the image (col2im, for the input gradient). Patch row r of the sample lies at
    /// columns[r * ld + offset ..][.._p].
    /// </summary>
    private void Patches(float[] image, float[] columns, int ld, int offset, bool scatter)
    {
        int groupSize = _cg * c.Window.H * c.Window.W;
        for (int g = 0; g < c.Group; g++)
        {
            var img = image.AsSpan(g * groupSize, groupSize);
            for (int r = 0; r < _kk; r++)
            {
                var row = columns.AsSpan((g * _kk + r) * ld + offset, _p);
                var map = _gather.AsSpan(r * _p, _p);
                if (scatter)
                {
                    for (int q = 0; q < row.Length; q++) if (map[q] >= 0) img[map[q]] += row[q];
                }
                else for (int q = 0; q < row.Length; q++) row[q] = map[q] >= 0 ? img[map[q]] : 0f;
            }
        }
    }

    public override void Forward(Workspace ws) => Forward(ws.Alone, 1);
    public override void Backward(Workspace ws) => Backward(ws.Alone, 1);

    public override void Forward(Workspace[] batch, int count)
    {
        int ld = count * _p;
        var col = batch[0].Buffer(_col, c.Group * _kk * batch.Length * _p);
        var z = batch[0].Buffer(_z, c.M * batch.Length * _p);
        for (int s = 0; s < count; s++) Patches(batch[s].Values[input], col, ld, s * _p, scatter: false);
        for (int m = 0; m < c.M; m++) z.AsSpan(m * ld, ld).Fill(c.Bias?[m] ?? 0f);
        var w = weight.Value;
        for (int g = 0; g < c.Group; g++)
            Gemm.NN(_mg, ld, _kk, w.AsSpan(g * _mg * _kk), _kk, col.AsSpan(g * _kk * ld), ld, z.AsSpan(g * _mg * ld), ld);
        for (int s = 0; s < count; s++)
        {
            var y = batch[s].Values[output];
            for (int m = 0; m < c.M; m++)
            {
                var zRow = z.AsSpan(m * ld + s * _p, _p);
                if (c.Activation == Activation.Relu) TensorPrimitives.Max(zRow, 0f, y.AsSpan(m * _p, _p));
                else zRow.CopyTo(y.AsSpan(m * _p, _p));
            }
            Gate.Apply(batch[s], gate, y, c.M);
        }
    }

    public override void Backward(Workspace[] batch, int count)
    {
        int ld = count * _p;
        var col = batch[0].Buffer(_col, 0); // filled by Forward of this batch
        var dz = batch[0].Buffer(_z, 0);    // Z is no longer needed: dZ takes its place
        for (int s = 0; s < count; s++)
        {
            var (y, dy) = Gate.Backward(batch[s], gate, batch[s].Values[output], batch[s].Gradients[output], c.M);
            for (int m = 0; m < c.M; m++)
            {
                var dzRow = dz.AsSpan(m * ld + s * _p, _p);
                dy.AsSpan(m * _p, _p).CopyTo(dzRow);
                if (c.Activation == Activation.Relu)
                    for (int p = 0; p < _p; p++) if (y[m * _p + p] <= 0f) dzRow[p] = 0f;
            }
        }
        if (bias is not null)
        {
            var db = batch[0].GradientOf(bias);
            for (int m = 0; m < c.M; m++) db[m] += TensorPrimitives.Sum(dz.AsSpan(m * ld, ld));
        }
        var w = weight.Value;
        var dw = batch[0].GradientOf(weight);
        for (int g = 0; g < c.Group; g++)
            Gemm.NT(_mg, _kk, ld, dz.AsSpan(g * _mg * ld), ld, col.AsSpan(g * _kk * ld), ld, dw.AsSpan(g * _mg * _kk), _kk);
        if (input == batch[0].Net.InputId && !batch[0].Net.ComputesInputGradient) return;
        var dcol = batch[0].Buffer(_dcol, col.Length);
        var wt = batch[0].Buffer(_wt, _kk * _mg);
        Array.Clear(dcol, 0, c.Group * _kk * ld);
        for (int g = 0; g < c.Group; g++)
        {
            Gemm.Transpose(_mg, _kk, w.AsSpan(g * _mg * _kk), _kk, wt, _mg);
            Gemm.NN(_kk, ld, _mg, wt, _mg, dz.AsSpan(g * _mg * ld), ld, dcol.AsSpan(g * _kk * ld), ld);
        }
        for (int s = 0; s < count; s++) Patches(batch[s].Gradients[input], dcol, ld, s * _p, scatter: true);
    }
}

/// <summary>Max and average pooling, through a table of each output position's input taps (computed once).</summary>
internal sealed class PoolStep(PoolLayer p, int input, int output) : Step
{
    private readonly int _k = p.Window.KH * p.Window.KW;
    /// <summary>Per output position of a plane, KH×KW taps: the input index in the plane, -1 in the padding, -2 beyond it.</summary>
    private readonly int[] _taps = Taps(p);
    /// <summary>Per output position: 1 / the number of values an average divides by.</summary>
    private readonly float[] _inverseCount = InverseCounts(p);

    private static int[] Taps(PoolLayer p)
    {
        var taps = new int[p.Window.OH * p.Window.OW * p.Window.KH * p.Window.KW];
        int t = 0;
        for (int oh = 0; oh < p.Window.OH; oh++)
            for (int ow = 0; ow < p.Window.OW; ow++)
                for (int i = 0; i < p.Window.KH; i++)
                {
                    int ih = oh * p.Window.StrideH - p.Window.PadTop + i * p.Window.DilationH;
                    for (int j = 0; j < p.Window.KW; j++)
                    {
                        int iw = ow * p.Window.StrideW - p.Window.PadLeft + j * p.Window.DilationW;
                        taps[t++] = (uint)ih < (uint)p.Window.H && (uint)iw < (uint)p.Window.W ? ih * p.Window.W + iw
                            : ih >= -p.Window.PadTop && ih < p.Window.H + p.Window.PadBottom && iw >= -p.Window.PadLeft && iw < p.Window.W + p.Window.PadRight ? -1 : -2;
                    }
                }
        return taps;
    }

    private static float[] InverseCounts(PoolLayer p)
    {
        var taps = Taps(p);
        int k = p.Window.KH * p.Window.KW;
        return Enumerable.Range(0, p.Window.OH * p.Window.OW).Select(o => 1f / taps.AsSpan(o * k, k).ToArray().Count(t => t >= 0 || (t == -1 && p.CountIncludePad))).ToArray();
    }

    public override void Forward(Workspace ws)
    {
        var x = ws.Values[input];
        var y = ws.Values[output];
        var arg = ws.IndexBuffer(this, y.Length);
        int inPlane = p.Window.H * p.Window.W, outPlane = p.Window.OH * p.Window.OW;
        for (int plane = 0; plane < p.Planes; plane++)
        {
            var xp = x.AsSpan(plane * inPlane, inPlane);
            for (int o = 0; o < outPlane; o++)
            {
                var taps = _taps.AsSpan(o * _k, _k);
                if (p.IsMax)
                {
                    float acc = float.NegativeInfinity;
                    int best = -1;
                    foreach (int t in taps)
                    {
                        if (t < 0) continue;
                        float v = xp[t];
                        bool larger = v > acc; // without a branch on the data: which tap wins is unpredictable
                        best = larger ? t : best;
                        acc = larger ? v : acc;
                    }
                    arg[plane * outPlane + o] = best < 0 ? -1 : plane * inPlane + best;
                    y[plane * outPlane + o] = acc;
                }
                else
                {
                    float acc = 0f;
                    foreach (int t in taps) if (t >= 0) acc += xp[t];
                    y[plane * outPlane + o] = acc * _inverseCount[o];
                }
            }
        }
    }

    public override void Backward(Workspace ws)
    {
        var dy = ws.Gradients[output];
        var dx = ws.Gradients[input];
        if (p.IsMax)
        {
            var arg = ws.IndexBuffer(this, 0);
            for (int o = 0; o < dy.Length; o++) if (arg[o] >= 0) dx[arg[o]] += dy[o];
            return;
        }
        int inPlane = p.Window.H * p.Window.W, outPlane = p.Window.OH * p.Window.OW;
        for (int plane = 0; plane < p.Planes; plane++)
            for (int o = 0; o < outPlane; o++)
            {
                float g = dy[plane * outPlane + o] * _inverseCount[o];
                foreach (int t in _taps.AsSpan(o * _k, _k)) if (t >= 0) dx[plane * inPlane + t] += g;
            }
    }
}

internal sealed class GlobalPoolStep(GlobalPoolLayer g, int input, int output) : Step
{
    public override void Forward(Workspace ws)
    {
        var x = ws.Values[input];
        var y = ws.Values[output];
        var arg = ws.IndexBuffer(this, g.Planes);
        for (int plane = 0; plane < g.Planes; plane++)
        {
            var xp = x.AsSpan(plane * g.Spatial, g.Spatial);
            if (g.IsMax)
            {
                arg[plane] = plane * g.Spatial + TensorPrimitives.IndexOfMax(xp);
                y[plane] = x[arg[plane]];
            }
            else y[plane] = TensorPrimitives.Sum(xp) / g.Spatial;
        }
    }

    public override void Backward(Workspace ws)
    {
        var dy = ws.Gradients[output];
        var dx = ws.Gradients[input];
        var arg = ws.IndexBuffer(this, 0);
        for (int plane = 0; plane < g.Planes; plane++)
        {
            if (g.IsMax) dx[arg[plane]] += dy[plane];
            else TensorPrimitives.Add(dx.AsSpan(plane * g.Spatial, g.Spatial), dy[plane] / g.Spatial, dx.AsSpan(plane * g.Spatial, g.Spatial));
        }
    }
}

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
