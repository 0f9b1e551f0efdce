using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

/// <summary>
/// Depthwise convolution (one filter per channel) computed straight into the output rows: per channel, its
/// zero-padded plane, its taps held in vector registers, and per vector of outputs one load per tap (stride 2:
/// the even lanes of one load). No wide rows to compact and no phase planes to split, which is most of what the
/// group-by-group GEMM spends on a depthwise layer.
/// </summary>
internal sealed partial class KernelEmitter
{
    /// <summary>Outputs per vector: V, or V / 2 for stride 2 (the even lanes of a full load; at least 128 bits).</summary>
    private int DepthwiseLanes(ConvLayer c) => c.Window.StrideW == 1 ? V : V / 2;

    /// <summary>
    /// Depthwise with one output channel per input channel, stride 1 or 2, rows at least one vector of outputs wide,
    /// and no skip connection to add (the group GEMM handles every other grouped conv).
    /// </summary>
    public bool UsesDepthwiseKernel(ConvLayer c, Epilogue act) =>
        c.IsDepthwise && c.Format == WeightFormat.Dense && !act.Residual && c.Window.StrideH <= 2 && c.Window.StrideW <= 2
        && (c.Window.StrideW == 1 || V >= 8) && (c.Window.OW >= DepthwiseLanes(c) || UsesFlatDepthwise(c));

    /// <summary>
    /// Largest padded plane for stride 2 copied whole: its loads each straddle two cache lines, so what they read must
    /// stay in L1 (measured: a 56x56 map 1.6x faster than the phase-plane GEMM, a whole 112x112 plane 1.3x slower).
    /// A larger plane is copied and computed in bands of output rows whose input rows fit this.
    /// </summary>
    private const int StridedPlaneBytes = 32 * 1024;

    /// <summary>Output rows per band, and the padded rows a band reads; all of them when the plane is copied whole.</summary>
    private static (int Rows, int PaddedRows) DepthwiseBand(ConvLayer c)
    {
        var (hp, wp) = DepthwisePlane(c);
        if (c.Window.StrideW == 1 || hp * wp * sizeof(float) <= StridedPlaneBytes) return (c.Window.OH, hp);
        int reach = (c.Window.KH - 1) * c.Window.DilationH + 1;
        int rows = Math.Clamp((StridedPlaneBytes / sizeof(float) / wp - reach) / c.Window.StrideH + 1, 1, c.Window.OH);
        return (rows, (rows - 1) * c.Window.StrideH + reach);
    }

    /// <summary>Rows and columns of a channel's padded plane: the padded input and a column for the float a stride-2 load reads past the last window.</summary>
    private static (int Hp, int Wp) DepthwisePlane(ConvLayer c) => (PaddedSize(c).Hp, PaddedSize(c).Wp + 1);

    /// <summary>Floats of the padded plane (or band), plus a vector of slack for the last row's loads.</summary>
    public int DepthwiseBufferSize(ConvLayer c) =>
        UsesFlatDepthwise(c) ? FlatLead(c) + c.Window.H * c.Window.W + FlatTail(c) : DepthwiseBand(c).PaddedRows * DepthwisePlane(c).Wp + V;

    private void DepthwiseConv(CodeWriter w, string method, ConvLayer c, Epilogue act)
    {
        if (UsesFlatDepthwise(c))
        {
            FlatDepthwiseConv(w, method, c, act);
            return;
        }
        bool bias = c.Bias is not null, half = c.Window.StrideW == 2;
        var (hp, wp) = DepthwisePlane(c);
        int lanes = DepthwiseLanes(c), taps = c.Window.KH * c.Window.KW;
        string vt = half ? $"Vector{target.SimdBits / 2}<float>" : VT, vs = half ? $"Vector{target.SimdBits / 2}" : VS;
        w.Line($"// Depthwise convolution, one channel at a time: its padded plane [{hp} x {wp}], its {taps} taps in registers,");
        w.Line($"// {lanes} outputs per vector{(half ? " (the even lanes of one load: stride 2)" : "")}, 4 vectors at a time, stored straight into the output row.");
        w.Line(Hot);
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y, float[] w{(bias ? ", float[] b" : "")}, Span<float> padded)");
        w.Line($"const int C = {I(c.C)}, H = {I(c.Window.H)}, W = {I(c.Window.W)}, OH = {I(c.Window.OH)}, OW = {I(c.Window.OW)}, Wp = {I(wp)}, PT = {I(c.Window.PadTop)}, PL = {I(c.Window.PadLeft)}, SH = {I(c.Window.StrideH)};");
        w.Line("ref float pr = ref MemoryMarshal.GetReference(padded);");
        w.Open(c.Batch == 1 ? "for (int n = 0; n < C; n++) // channel n" : $"for (int n = 0; n < {I(c.Batch)} * C; n++) // sample n / C, channel n % C");
        w.Line("int ch = n % C;");
        var (band, bandRows) = DepthwiseBand(c);
        bool banded = band < c.Window.OH;
        if (!banded)
        {
            w.Line("// The padding border is never written, so it stays zero from allocation.");
            w.Line("for (int h = 0; h < H; h++) x.Slice((n * H + h) * W, W).CopyTo(padded.Slice((h + PT) * Wp + PL, W));");
        }
        w.Line("ref float yc = ref Unsafe.Add(ref MemoryMarshal.GetReference(y), n * (OH * OW));");
        w.Line($"ref float wc = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(w), ch * {I(taps)});");
        for (int t = 0; t < taps; t++)
            w.Line($"{vt} w{t} = {vs}.Create(Unsafe.Add(ref wc, {I(t)}));");
        w.Line(bias ? $"{vt} bias = {vs}.Create(b[ch]);" : $"{vt} bias = {vt}.Zero;");
        if (banded)
        {
            w.Open($"for (int oh0 = 0; oh0 < OH; oh0 += {I(band)}) // bands of {band} output rows: the {bandRows} padded rows they read stay in L1");
            w.Open($"for (int r = 0; r < {I(bandRows)}; r++)");
            w.Line("int h = oh0 * SH + r - PT;");
            w.Line("// Input rows go in the band's rows (their side borders are never written, so they stay zero); padding rows are zeros.");
            w.Line("if ((uint)h < (uint)H) x.Slice((n * H + h) * W, W).CopyTo(padded.Slice(r * Wp + PL, W));");
            w.Line("else padded.Slice(r * Wp, Wp).Clear();");
            w.Close();
            w.Open($"for (int oh = oh0; oh < Math.Min(OH, oh0 + {I(band)}); oh++)");
            w.Line("ref float row = ref Unsafe.Add(ref pr, (oh - oh0) * SH * Wp);");
        }
        else
        {
            w.Open("for (int oh = 0; oh < OH; oh++)");
            w.Line("ref float row = ref Unsafe.Add(ref pr, oh * SH * Wp);");
        }
        w.Line("ref float yo = ref Unsafe.Add(ref yc, oh * OW);");
        w.Line("int ow = 0;");
        if (c.Window.OW >= 4 * lanes)
        {
            w.Open($"for (; ow <= OW - {I(4 * lanes)}; ow += {I(4 * lanes)})");
            DepthwiseVectors(w, c, act, 4, lanes, vt, vs);
            w.Close();
        }
        w.Open($"for (; ow <= OW - {I(lanes)}; ow += {I(lanes)})");
        DepthwiseVectors(w, c, act, 1, lanes, vt, vs);
        w.Close();
        if (c.Window.OW % lanes != 0)
        {
            w.Open("// the last outputs: the final vector, overlapping outputs already stored with the same values");
            w.Line($"ow = OW - {I(lanes)};");
            DepthwiseVectors(w, c, act, 1, lanes, vt, vs);
            w.Close();
        }
        w.Close();
        if (banded) w.Close();
        if (act.Gate is { } gate) w.Line(GatePass(gate, "MemoryMarshal.CreateSpan(ref yc, OH * OW)"));
        w.Close();
        w.Close();
    }

    /// <summary>Vectors of outputs at ow: the sum over taps, then bias, bounds and store.</summary>
    private void DepthwiseVectors(CodeWriter w, ConvLayer c, Epilogue act, int count, int lanes, string vt, string vs)
    {
        var us = Enumerable.Range(0, count).ToArray();
        foreach (var u in us) w.Line($"{vt} a{u} = bias;");
        for (int i = 0; i < c.Window.KH; i++)
            for (int j = 0; j < c.Window.KW; j++)
            {
                int t = i * c.Window.KW + j;
                string at = Sum(i == 0 ? "" : $"{I(i * c.Window.DilationH)} * Wp", j * c.Window.DilationW);
                foreach (var u in us)
                {
                    string column = c.Window.StrideW == 1 ? Sum("ow", u * lanes) : u == 0 ? "2 * ow" : $"2 * (ow + {I(u * lanes)})";
                    string load = c.Window.StrideW == 1
                        ? $"{VS}.LoadUnsafe(ref row, {Nuint(Sum(column, at))})"
                        : $"{VS}.Shuffle({VS}.LoadUnsafe(ref row, {Nuint(Sum(column, at))}), {EvenLanesFirst}).GetLower()";
                    w.Line($"a{u} = {Fma($"w{t}", load, $"a{u}", vs)};");
                }
            }
        foreach (var u in us)
            w.Line($"({VAct(act.Inner, $"a{u}", vt, vs)}).StoreUnsafe(ref yo, {Nuint(Sum("ow", u * lanes))});");
    }
}
