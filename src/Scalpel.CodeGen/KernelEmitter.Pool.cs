using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

internal sealed partial class KernelEmitter
{
    public void Pool(CodeWriter w, string method, PoolLayer p)
    {
        if (IsPairMaxPool(p))
        {
            PairMaxPool(w, method, p);
            return;
        }
        w.Line(Hot);
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y)");
        w.Line($"const int Planes = {I(p.Planes)}, H = {I(p.H)}, W = {I(p.W)}, KH = {I(p.KH)}, KW = {I(p.KW)}, OH = {I(p.OH)}, OW = {I(p.OW)};");
        w.Line($"const int SH = {I(p.StrideH)}, SW = {I(p.StrideW)}, DH = {I(p.DilationH)}, DW = {I(p.DilationW)};");
        w.Line(p.IsMax ? $"const int PT = {I(p.PadTop)}, PL = {I(p.PadLeft)};"
            : $"const int PT = {I(p.PadTop)}, PL = {I(p.PadLeft)}, PB = {I(p.PadBottom)}, PR = {I(p.PadRight)};");
        w.Open("for (int plane = 0; plane < Planes; plane++)");
        w.Line("ReadOnlySpan<float> xp = x.Slice(plane * H * W, H * W);");
        w.Line("Span<float> yp = y.Slice(plane * OH * OW, OH * OW);");
        w.Open("for (int oh = 0; oh < OH; oh++)");
        w.Open("for (int ow = 0; ow < OW; ow++)");
        w.Line(p.IsMax ? "float acc = float.NegativeInfinity;" : "float acc = 0f; int count = 0;");
        w.Open("for (int i = 0; i < KH; i++)");
        w.Line("int ih = oh * SH - PT + i * DH;");
        w.Line(p.IsMax ? "if ((uint)ih >= H) continue;" : "if (ih < -PT || ih >= H + PB) continue; // beyond the padding (ceil_mode)");
        w.Open("for (int j = 0; j < KW; j++)");
        w.Line("int iw = ow * SW - PL + j * DW;");
        if (p.IsMax)
            w.Line("if ((uint)iw < W) acc = MathF.Max(acc, xp[ih * W + iw]);");
        else
        {
            w.Line("if (iw < -PL || iw >= W + PR) continue;");
            w.Line($"if ((uint)ih < H && (uint)iw < W) {{ acc += xp[ih * W + iw]; count++; }}{(p.CountIncludePad ? " else count++;" : "")}");
        }
        w.Close();
        w.Close();
        w.Line(p.IsMax ? "yp[oh * OW + ow] = acc;" : "yp[oh * OW + ow] = acc / count;");
        w.Close();
        w.Close();
        w.Close();
        w.Close();
    }

    /// <summary>
    /// A max pool 2 wide with horizontal stride 2 whose windows never reach the padding (LeNet's and most CNNs'),
    /// at least half a vector of outputs wide: it runs on vectors of 4 or more lanes.
    /// </summary>
    private bool IsPairMaxPool(PoolLayer p) =>
        p.IsMax && p.KW == 2 && p.StrideW == 2 && p.DilationW == 1 && p.PadTop == 0 && p.PadLeft == 0
        && (p.OH - 1) * p.StrideH + (p.KH - 1) * p.DilationH < p.H && 2 * p.OW <= p.W && V >= 4 && p.OW >= V / 2;

    /// <summary>
    /// One vector of inputs per V/2 outputs: the max over the window's rows, then of each lane and its pair
    /// neighbour, then the even lanes packed into the lower half and stored. A row whose width is no multiple of
    /// V/2 ends with an overlapping vector that rewrites some outputs with the same values.
    /// </summary>
    private void PairMaxPool(CodeWriter w, string method, PoolLayer p)
    {
        int half = V / 2;
        string swap = $"{VS}.Create({string.Join(", ", Enumerable.Range(0, V).Select(i => I(i ^ 1)))})";
        w.Line(Hot);
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y)");
        w.Line($"const int Planes = {I(p.Planes)}, H = {I(p.H)}, W = {I(p.W)}, OH = {I(p.OH)}, OW = {I(p.OW)}, SH = {I(p.StrideH)}, DH = {I(p.DilationH)};");
        w.Line("ref float xr = ref MemoryMarshal.GetReference(x);");
        w.Line("ref float yr = ref MemoryMarshal.GetReference(y);");
        w.Open("for (int plane = 0; plane < Planes; plane++)");
        w.Open("for (int oh = 0; oh < OH; oh++)");
        for (int i = 0; i < p.KH; i++)
            w.Line($"ref float x{i} = ref Unsafe.Add(ref xr, (plane * H + oh * SH + {I(i)} * DH) * W);");
        w.Line("ref float yo = ref Unsafe.Add(ref yr, (plane * OH + oh) * OW);");
        void Body()
        {
            w.Line($"{VT} v = {VS}.LoadUnsafe(ref x0, (nuint)(2 * ow));");
            for (int i = 1; i < p.KH; i++) w.Line($"v = {VS}.Max(v, {VS}.LoadUnsafe(ref x{i}, (nuint)(2 * ow)));");
            w.Line($"v = {VS}.Max(v, {VS}.Shuffle(v, {swap}));");
            w.Line($"{VS}.Shuffle(v, {EvenLanesFirst}).GetLower().StoreUnsafe(ref yo, (nuint)ow);");
        }
        w.Line("int ow = 0;");
        w.Open($"for (; ow <= OW - {I(half)}; ow += {I(half)})");
        Body();
        w.Close();
        if (p.OW % half != 0)
        {
            w.Open($"// the last {p.OW % half} output(s): the final vector, overlapping outputs already stored");
            w.Line($"ow = OW - {I(half)};");
            Body();
            w.Close();
        }
        w.Close();
        w.Close();
        w.Close();
    }

    /// <summary>Each plane reduced in vector lanes (a scalar chain of adds would wait on the add latency), then across them.</summary>
    public void GlobalPool(CodeWriter w, string method, GlobalPoolLayer g)
    {
        w.Line(Hot);
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y)");
        w.Line($"const int Planes = {I(g.Planes)}, S = {I(g.Spatial)};");
        w.Line("ref float xr = ref MemoryMarshal.GetReference(x);");
        w.Open("for (int plane = 0; plane < Planes; plane++)");
        w.Line("ref float xp = ref Unsafe.Add(ref xr, plane * S);");
        w.Line("int i = 0;");
        if (g.Spatial >= V)
        {
            w.Line(g.IsMax ? $"{VT} lanes = {VS}.Create(float.NegativeInfinity);" : $"{VT} lanes = {VT}.Zero;");
            w.Line(g.IsMax
                ? $"for (; i <= S - {I(V)}; i += {I(V)}) lanes = {VS}.Max(lanes, {VS}.LoadUnsafe(ref xp, (nuint)i));"
                : $"for (; i <= S - {I(V)}; i += {I(V)}) lanes += {VS}.LoadUnsafe(ref xp, (nuint)i);");
            if (g.IsMax)
            {
                w.Line("float acc = float.NegativeInfinity;");
                w.Line($"for (int l = 0; l < {I(V)}; l++) acc = MathF.Max(acc, lanes[l]);");
            }
            else w.Line($"float acc = {VS}.Sum(lanes);");
        }
        else w.Line(g.IsMax ? "float acc = float.NegativeInfinity;" : "float acc = 0f;");
        w.Line(g.IsMax ? "for (; i < S; i++) acc = MathF.Max(acc, Unsafe.Add(ref xp, i));" : "for (; i < S; i++) acc += Unsafe.Add(ref xp, i);");
        w.Line(g.IsMax ? "y[plane] = acc;" : "y[plane] = acc / S;");
        w.Close();
        w.Close();
    }
}
