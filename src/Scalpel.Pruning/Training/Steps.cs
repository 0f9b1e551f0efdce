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

    internal Parameter Weight => weight;
    internal int RowLength => d.K;

    /// <summary>
    /// Rows [from, to) of dW = Σ dZᵀ X over the shards of a mini-batch, in shard order, from the buffers their
    /// Backward left (when the network defers Dense weight gradients). With a few samples a shard, the per-shard
    /// product reads and writes the whole gradient for a few multiply-adds per entry; this writes it once per mini-batch.
    /// </summary>
    internal void WeightGradient(Workspace[][] shards, int[] counts, int from, int to)
    {
        var dw = shards[0][0].GradientOf(weight).AsSpan(from * d.K, (to - from) * d.K);
        for (int s = 0; s < shards.Length; s++)
        {
            int r = counts[s] * d.InputRows;
            if (r == 0) continue;
            var ws = shards[s][0];
            Gemm.NN(to - from, d.K, r, ws.Buffer(_zt, 0).AsSpan(from * r), r, ws.Buffer(_x, 0), d.K, dw, d.K);
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
        if (!batch[0].Net.DefersDenseWeightGradients) Gemm.NN(d.N, d.K, r, dzt, r, x, d.K, batch[0].GradientOf(weight), d.K);
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
