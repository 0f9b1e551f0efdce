using System.Numerics.Tensors;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;

namespace Scalpel.Pruning.Training;

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
