using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

/// <summary>
/// Depthwise convolution on small maps (rows under two vectors, stride 1, output the input's size): a channel's plane
/// is one flat row of H x W outputs, so every vector is full and runs across row ends. A tap then reads the
/// neighbouring row's end where a window passes the side border; a constant mask per column offset zeroes those
/// lanes, applied once to the sum of that offset's column of taps. Rows above and below the plane are zeros.
/// </summary>
internal sealed partial class KernelEmitter
{
    /// <summary>Largest flat plane, in vectors: bounds the mask table (one vector per plane vector and column offset).</summary>
    private const int FlatPlaneVectors = 64;

    /// <summary>
    /// Same-size stride-1 planes whose rows are under two vectors, where the row kernel does worse or cannot run: rows of
    /// at most half a vector (copied row by row, a call each) or under 4 outputs, or taps the row kernel cannot keep in
    /// registers. Elsewhere the masks
    /// (an AND and an add per column offset and vector) cost more than the row kernel's unused lanes: at 512 bits on
    /// 14x14 and 28x28 maps the row kernel measured 12-23 % faster (480 channels 5x5 on 14x14: 95 against 117 µs).
    /// </summary>
    private bool UsesFlatDepthwise(ConvLayer c)
    {
        var w = c.Window;
        return w.StrideH == 1 && w.StrideW == 1 && w.OH == w.H && w.OW == w.W && w.W < 2 * V
            && w.H * w.W >= V && w.H * w.W <= FlatPlaneVectors * V
            && (FlatRowsShort(c) || !DepthwiseTapsInRegisters(c, DepthwiseLanes(c)));
    }

    /// <summary>Rows the row kernel handles poorly or not at all: at most half a vector, or under 4 outputs.</summary>
    private bool FlatRowsShort(ConvLayer c) => 2 * c.Window.W <= V || c.Window.OW < 4;

    /// <summary>Zeros before the plane: the rows above it and the columns a window's first load reads before its start.</summary>
    private static int FlatLead(ConvLayer c) => c.Window.PadTop * c.Window.W + c.Window.PadLeft;

    /// <summary>Floats of one of the two plane slots: the plane with its zeros, rounded up to a cache line.</summary>
    private static int FlatSlot(ConvLayer c) => (FlatLead(c) + c.Window.H * c.Window.W + FlatTail(c) + 15) / 16 * 16;

    /// <summary>Zeros after the plane: the rows below it and the columns past its end.</summary>
    private static int FlatTail(ConvLayer c)
    {
        var w = c.Window;
        int padBottom = (w.KH - 1) * w.DilationH - w.PadTop, padRight = (w.KW - 1) * w.DilationW - w.PadLeft;
        return padBottom * w.W + padRight;
    }

    /// <summary>The column offsets of the taps, left to right (dilated, less the left padding).</summary>
    private static int[] FlatColumnOffsets(ConvLayer c) =>
        Enumerable.Range(0, c.Window.KW).Select(j => j * c.Window.DilationW - c.Window.PadLeft).ToArray();

    private void FlatDepthwiseConv(CodeWriter w, string method, ConvLayer c, Epilogue act)
    {
        var win = c.Window;
        bool bias = c.Bias is not null;
        int hw = win.H * win.W, vectors = (hw + V - 1) / V, taps = win.KH * win.KW;
        var offsets = FlatColumnOffsets(c);
        var masked = offsets.Where(o => o != 0).ToArray();
        // 3x3: 9 taps, 4 sums and 4 masked column sums in registers; more taps leave room for 2.
        int block = taps <= 9 ? 4 : 2;

        // A kernel one column wide (1x1, or KH x 1) never passes the side border: no masks.
        if (masked.Length > 0)
        {
            w.Line($"// Lanes whose window column falls outside the plane, per output vector and column offset ({string.Join(", ", masked)}).");
            w.Line($"private static ReadOnlySpan<uint> {method}Masks =>");
            w.Line("[");
            for (int k = 0; k < vectors; k++)
            {
                int q0 = Math.Min(k * V, hw - V);
                var lanes = masked.SelectMany(o => Enumerable.Range(0, V).Select(l => (q0 + l) % win.W + o).Select(col => col >= 0 && col < win.W ? "~0u" : "0"));
                w.Line($"    {string.Join(", ", lanes)},");
            }
            w.Line("];");
            w.Line();
        }
        w.Line($"// Depthwise convolution on a {win.H}x{win.W} map, one channel at a time: its plane as one flat row of {hw} outputs in");
        w.Line($"// {vectors} vectors (the last overlapping the one before), {taps} taps in registers, zero rows above and below, and");
        w.Line("// per column offset a mask that zeroes the lanes whose window passes the side border.");
        w.Line(Hot);
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y, float[] w{(bias ? ", float[] b" : "")}, Span<float> padded)");
        int planes = c.Batch * c.C;
        w.Line($"const int C = {I(c.C)}, HW = {I(hw)}, Lead = {I(FlatLead(c))}, Slot = {I(FlatSlot(c))};");
        w.Line("ref float xr = ref MemoryMarshal.GetReference(x);");
        w.Line("ref float slots = ref MemoryMarshal.GetReference(padded);");
        if (masked.Length > 0) w.Line($"ref uint mr = ref MemoryMarshal.GetReference({method}Masks);");
        // A few vector copies, the last overlapping: a call to copy 49 floats costs as much as their taps.
        var copies = Enumerable.Range(0, vectors).Select(k => Math.Min(k * V, hw - V)).ToArray();
        void CopyPlane(string from, string to) =>
            w.Line(string.Join(" ", copies.Select(q => $"{VS}.LoadUnsafe(ref xr, {Nuint(Sum(from, q))}).StoreUnsafe(ref slots, {Nuint(Sum(to, q))});")));
        w.Line("// Planes go to two slots in turn, and only the plane is written: the zeros around it stay zero from allocation.");
        CopyPlane("", "Lead");
        OpenDepthwisePlanes(w, c, VT, VS, () => CopyPlane("(n + 1) * HW", "((n + 1) & 1) * Slot + Lead"));
        w.Line("int k = 0;");
        if (vectors >= block)
        {
            w.Open($"for (; k <= {I(vectors - block)}; k += {I(block)})");
            FlatDepthwiseVectors(w, c, act, block, masked.Length);
            w.Close();
        }
        if (vectors % block != 0)
        {
            w.Open($"for (; k < {I(vectors)}; k++)");
            FlatDepthwiseVectors(w, c, act, 1, masked.Length);
            w.Close();
        }
        if (act.Gate is { } gate) w.Line(GatePass(gate, "MemoryMarshal.CreateSpan(ref yc, HW)"));
        w.Close();
        w.Close();
    }

    /// <summary>Vectors k.. of the flat plane: per column offset its taps summed, masked unless the offset is 0, then added.</summary>
    private void FlatDepthwiseVectors(CodeWriter w, ConvLayer c, Epilogue act, int count, int maskedCount)
    {
        var win = c.Window;
        var us = Enumerable.Range(0, count).ToArray();
        foreach (var u in us)
        {
            w.Line($"int q{u} = Math.Min({Scaled("k", u, I(V))}, HW - {I(V)});");
            w.Line($"{VT} a{u} = bias;");
        }
        int m = 0;
        foreach (var (dj, j) in FlatColumnOffsets(c).Select((o, j) => (o, j)))
        {
            for (int i = 0; i < win.KH; i++)
            {
                int t = i * win.KW + j;
                long at = FlatLead(c) + (long)(i * win.DilationH - win.PadTop) * win.W + dj;
                foreach (var u in us)
                {
                    string load = $"{VS}.LoadUnsafe(ref pr, {Nuint(Sum($"q{u}", at))})";
                    if (dj == 0) w.Line($"a{u} = {Fma($"w{t}", load, $"a{u}")};");
                    else w.Line(i > 0 ? $"s{u} = {Fma($"w{t}", load, $"s{u}")};" : $"{(m == 0 ? VT + " " : "")}s{u} = w{t} * {load};");
                }
            }
            if (dj == 0) continue;
            foreach (var u in us)
                w.Line($"a{u} += s{u} & {VS}.LoadUnsafe(ref mr, (nuint)({Scaled("k", u, I(maskedCount * V))} + {I(m * V)})).AsSingle();");
            m++;
        }
        foreach (var u in us)
            w.Line($"({VAct(act.Inner, $"a{u}")}).StoreUnsafe(ref yc, (nuint)q{u});");
    }
}
