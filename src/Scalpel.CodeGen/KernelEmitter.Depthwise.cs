using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

/// <summary>
/// Depthwise convolution (one filter per channel) computed straight into the output rows: per channel, its
/// zero-padded plane, its taps in vector registers (or broadcast from the weights where they do not fit beside the
/// sums), and per vector of outputs one load per tap. For stride 2
/// each padded row is stored as its even columns then its odd columns, split once as it is copied, so every tap
/// is a contiguous load again. No wide rows to compact, which is most of what the group-by-group GEMM spends on a
/// depthwise layer.
/// </summary>
internal sealed partial class KernelEmitter
{
    /// <summary>
    /// Depthwise with one output channel per input channel, stride 1 or 2, rows at least one vector of outputs wide
    /// (or a small plane the flat kernel takes), and no skip connection to add (the group GEMM handles every other
    /// grouped conv).
    /// </summary>
    public bool UsesDepthwiseKernel(ConvLayer c, Epilogue act) =>
        c.IsDepthwise && c.Format == WeightFormat.Dense && !act.Residual && c.Window.StrideH <= 2 && c.Window.StrideW <= 2
        && (c.Window.OW >= 4 || UsesFlatDepthwise(c));

    /// <summary>
    /// Outputs per vector: the target's width, or on rows under one vector the narrowest vector (128 bits at least)
    /// that holds the row (<see cref="Ragged"/>).
    /// </summary>
    private int DepthwiseLanes(ConvLayer c)
    {
        int lanes = V;
        while (lanes > 4 && lanes / 2 >= c.Window.OW) lanes /= 2;
        return lanes;
    }

    /// <summary>
    /// A row under one vector: one vector per row, whose lanes past the row's end run into the next row (stored
    /// after it, so overwritten) or, after a plane's last row, into the next plane's first (computed after it). Only
    /// the last plane's last row is stored lane by lane. The lanes past the row read the floats after it in the
    /// padded plane, which has a vector of slack at its end.
    /// </summary>
    private bool Ragged(ConvLayer c) => c.Window.OW < DepthwiseLanes(c);

    /// <summary>
    /// Largest padded plane for stride 2 copied whole: a larger one is copied and computed in bands of output rows
    /// whose input rows fit this, so the rows a band reads twice stay in L1.
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

    /// <summary>
    /// Rows of a channel's padded plane and the floats between them: the padded row, or for stride 2 its even
    /// columns then its odd columns, each half as wide.
    /// </summary>
    private static (int Hp, int Wp) DepthwisePlane(ConvLayer c) => (PaddedSize(c).Hp, c.Window.StrideW == 1 ? PaddedSize(c).Wp : 2 * PhaseWidth(c));

    /// <summary>Columns of each half of a stride-2 padded row: the even columns, and as many places for the odd ones.</summary>
    private static int PhaseWidth(ConvLayer c) => (PaddedSize(c).Wp + 1) / 2;

    /// <summary>
    /// Floats of the padded band, or of two slots for whole planes (a channel's plane is copied while the one before
    /// it is computed): each with a vector of slack for the last row's loads.
    /// </summary>
    public int DepthwiseBufferSize(ConvLayer c) =>
        UsesFlatDepthwise(c) ? 2 * FlatSlot(c) : DepthwiseBand(c).Rows < c.Window.OH ? DepthwiseBand(c).PaddedRows * DepthwisePlane(c).Wp + V : 2 * DepthwiseSlot(c);

    /// <summary>Floats of one whole-plane slot, rounded up to a cache line.</summary>
    private int DepthwiseSlot(ConvLayer c) => (DepthwisePlane(c).Hp * DepthwisePlane(c).Wp + V + 15) / 16 * 16;

    private void DepthwiseConv(CodeWriter w, string method, ConvLayer c, Epilogue act)
    {
        if (UsesFlatDepthwise(c))
        {
            FlatDepthwiseConv(w, method, c, act);
            return;
        }
        bool bias = c.Bias is not null, strided = c.Window.StrideW == 2;
        var (hp, wp) = DepthwisePlane(c);
        int taps = c.Window.KH * c.Window.KW, lanes = DepthwiseLanes(c);
        string lt = $"Vector{lanes * 32}<float>", ls = $"Vector{lanes * 32}";
        w.Line($"// Depthwise convolution, one channel at a time: its padded plane [{hp} x {wp}]{(strided ? " (each row its even columns, then its odd ones)" : "")},");
        bool inRegisters = DepthwiseTapsInRegisters(c, lanes);
        string tapsAt = inRegisters ? $"its {taps} taps in registers" : $"its {taps} taps broadcast from the weights as used";
        int block = Math.Min(DepthwiseRowBlock(c, lanes), DepthwiseBand(c).Rows), splits = DepthwiseSplits(c, block, lanes);
        string sums = splits > 1 ? $", {splits} partial sums per vector" : "";
        w.Line(Ragged(c) ? $"// {tapsAt}, one {lanes}-lane vector per row of {c.Window.OW} outputs, its last lanes running into the next row, {block} rows at a time{sums}."
            : $"// {tapsAt}, {lanes} outputs per vector, {block} output rows at a time{sums}, stored straight into the output rows.");
        w.Line(Hot);
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y, float[] w{(bias ? ", float[] b" : "")}, Span<float> padded)");
        w.Line($"const int C = {I(c.C)}, H = {I(c.Window.H)}, W = {I(c.Window.W)}, OH = {I(c.Window.OH)}, OW = {I(c.Window.OW)}, Wp = {I(wp)}, PT = {I(c.Window.PadTop)},{(strided ? "" : $" PL = {I(c.Window.PadLeft)},")} SH = {I(c.Window.StrideH)};");
        var (band, bandRows) = DepthwiseBand(c);
        bool banded = band < c.Window.OH;
        int planes = c.Batch * c.C;
        void CopyPlane(string plane, string slot)
        {
            w.Open("for (int h = 0; h < H; h++)");
            DepthwiseRowCopy(w, c, plane, "h + PT", "slots", slot);
            w.Close();
        }
        if (banded) w.Line("ref float pr = ref MemoryMarshal.GetReference(padded);");
        else
        {
            w.Line($"const int Slot = {I(DepthwiseSlot(c))};");
            w.Line("ref float slots = ref MemoryMarshal.GetReference(padded);");
            w.Line("// Planes go to two slots in turn; their padding borders are never written, so they stay zero from allocation.");
            CopyPlane("0", "0");
        }
        OpenDepthwisePlanes(w, c, lt, ls, banded ? null : () => CopyPlane("n + 1", "((n + 1) & 1) * Slot"), inRegisters);
        // Rows from oh to end, in blocks of DepthwiseRowBlock output rows (each input row loaded once per block), then one by one.
        void Rows(string end)
        {
            if (block > 1)
            {
                w.Open($"for (; oh <= {end} - {I(block)}; oh += {I(block)}) // {block} output rows at a time");
                RowVectors(block);
                w.Close();
            }
            w.Open($"for (; oh < {end}; oh++)");
            RowVectors(1);
            w.Close();
        }
        void RowVectors(int rows)
        {
            w.Line(banded ? "ref float row = ref Unsafe.Add(ref pr, (oh - oh0) * SH * Wp);" : "ref float row = ref Unsafe.Add(ref pr, oh * SH * Wp);");
            w.Line("ref float yo = ref Unsafe.Add(ref yc, oh * OW);");
            w.Line("int ow = 0;");
            if (Ragged(c))
            {
                w.OpenBlock();
                DepthwiseVectors(w, c, act, 1, lanes, ragged: true, rows: rows);
                w.Close();
                return;
            }
            if (rows == 1 && c.Window.OW >= 4 * lanes)
            {
                w.Open($"for (; ow <= OW - {I(4 * lanes)}; ow += {I(4 * lanes)})");
                DepthwiseVectors(w, c, act, 4, lanes);
                w.Close();
            }
            w.Open($"for (; ow <= OW - {I(lanes)}; ow += {I(lanes)})");
            DepthwiseVectors(w, c, act, 1, lanes, rows: rows);
            w.Close();
            if (c.Window.OW % lanes != 0)
            {
                w.Open("// the last outputs: the final vector, overlapping outputs already stored (the same values, up to the rounding of its partial sums)");
                w.Line($"ow = OW - {I(lanes)};");
                DepthwiseVectors(w, c, act, 1, lanes, rows: rows);
                w.Close();
            }
        }
        if (banded)
        {
            w.Open($"for (int oh0 = 0; oh0 < OH; oh0 += {I(band)}) // bands of {band} output rows: the {bandRows} padded rows they read stay in L1");
            w.Open($"for (int r = 0; r < {I(bandRows)}; r++)");
            w.Line("int h = oh0 * SH + r - PT;");
            w.Line("// Input rows go in the band's rows (their side borders are never written, so they stay zero); padding rows are zeros.");
            w.Open("if ((uint)h < (uint)H)");
            DepthwiseRowCopy(w, c, "n", "r", "pr", "0");
            w.Close();
            w.Line("else padded.Slice(r * Wp, Wp).Clear();");
            w.Close();
            w.Line("int oh = oh0;");
            Rows($"Math.Min(OH, oh0 + {I(band)})");
            w.Close();
        }
        else
        {
            w.Line("int oh = 0;");
            Rows("OH");
        }
        if (act.Gate is { } gate) w.Line(GatePass(gate, "MemoryMarshal.CreateSpan(ref yc, OH * OW)"));
        w.Close();
        w.Close();
    }

    /// <summary>
    /// Opens the loop over planes n (channel n % C): with <paramref name="copyNext"/>, the plane's slot pr and the
    /// next plane copied into the other slot; then yc (the plane's output), the channel's taps w0.. and its bias.
    /// </summary>
    private static void OpenDepthwisePlanes(CodeWriter w, ConvLayer c, string vt, string vs, Action? copyNext, bool tapsInRegisters = true)
    {
        int planes = c.Batch * c.C, taps = c.Window.KH * c.Window.KW;
        w.Open(planes == c.C ? "for (int n = 0; n < C; n++) // channel n" : $"for (int n = 0; n < {I(planes)}; n++) // sample n / C, channel n % C");
        w.Line("int ch = n % C;");
        if (copyNext is not null)
        {
            w.Line("ref float pr = ref Unsafe.Add(ref slots, (n & 1) * Slot);");
            w.Line("// The next plane is copied a channel ahead: a load from a plane stored just before would wait for the stores.");
            w.Open($"if (n + 1 < {I(planes)})");
            copyNext();
            w.Close();
        }
        w.Line($"ref float yc = ref Unsafe.Add(ref MemoryMarshal.GetReference(y), n * {I(c.Window.OH * c.Window.OW)});");
        w.Line($"ref float wc = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(w), ch * {I(taps)});");
        for (int t = 0; tapsInRegisters && t < taps; t++)
            w.Line($"{vt} w{t} = {vs}.Create(Unsafe.Add(ref wc, {I(t)}));");
        w.Line(c.Bias is not null ? $"{vt} bias = {vs}.Create(b[ch]);" : $"{vt} bias = {vt}.Zero;");
    }

    /// <summary>
    /// Input row h of plane <paramref name="plane"/> into padded row <paramref name="row"/> of the slot at
    /// <paramref name="slot"/>, after its left padding. For stride 2 the
    /// row's even and odd columns go to the row's two halves: two vector loads split by a shuffle give one vector of
    /// each; an odd last column, or a row under two vectors, is copied float by float.
    /// </summary>
    private void DepthwiseRowCopy(CodeWriter w, ConvLayer c, string plane, string row, string buffer, string slot)
    {
        string from = plane == "0" ? "h * W" : plane == "n" ? "(n * H + h) * W" : $"(({plane}) * H + h) * W";
        if (c.Window.StrideW == 1)
        {
            w.Line($"x.Slice({from}, W).CopyTo(padded.Slice({Sum(slot, $"({row}) * Wp + PL")}, W));");
            return;
        }
        // Padded column PL + i is in the half of its parity, at (PL + i) / 2: x's even columns in one half, its odd in the other.
        int pl = c.Window.PadLeft, half = PhaseWidth(c), width = c.Window.W;
        int evens = (pl & 1) * half + pl / 2, odds = ((pl + 1) & 1) * half + (pl + 1) / 2;
        w.Line($"ref float src = ref Unsafe.Add(ref MemoryMarshal.GetReference(x), {from});");
        w.Line($"ref float dst = ref Unsafe.Add(ref {buffer}, {Sum(slot, $"({row}) * Wp")});");
        // The widest vectors (at most the target's) of which two fit in the row; rows under 8 floats go float by float.
        int lanes = V;
        while (lanes > 4 && 2 * lanes > width) lanes /= 2;
        if (width < 2 * lanes)
        {
            w.Line($"for (int i = 0; i < W; i++) Unsafe.Add(ref dst, (i & 1) == 0 ? {I(evens)} + i / 2 : {I(odds)} + i / 2) = Unsafe.Add(ref src, i);");
            return;
        }
        // One load of 2 x lanes floats, its even lanes shuffled to the lower half: two stores. At the target's width
        // two loads and halves of each; on 128-bit vectors the halves are taken as doubles (no 64-bit vectors).
        int load = Math.Min(2 * lanes, V);
        string lt = $"Vector{load * 32}<float>", ls = $"Vector{load * 32}";
        string order = EvenLanesFirstOf(load);
        void Split(string at)
        {
            if (load == 2 * lanes)
            {
                w.Line($"{lt} v = {ls}.Shuffle({ls}.LoadUnsafe(ref src, {Nuint(at)}), {order});");
                w.Line($"v.GetLower().StoreUnsafe(ref dst, {Nuint(Sum($"{at} / 2", evens))});");
                w.Line($"v.GetUpper().StoreUnsafe(ref dst, {Nuint(Sum($"{at} / 2", odds))});");
                return;
            }
            w.Line($"{lt} lo = {ls}.Shuffle({ls}.LoadUnsafe(ref src, {Nuint(at)}), {order}), hi = {ls}.Shuffle({ls}.LoadUnsafe(ref src, {Nuint(Sum(at, lanes))}), {order});");
            if (lanes == 4)
            {
                w.Line($"Vector128.Create(lo.AsDouble().GetElement(0), hi.AsDouble().GetElement(0)).AsSingle().StoreUnsafe(ref dst, {Nuint(Sum($"{at} / 2", evens))});");
                w.Line($"Vector128.Create(lo.AsDouble().GetElement(1), hi.AsDouble().GetElement(1)).AsSingle().StoreUnsafe(ref dst, {Nuint(Sum($"{at} / 2", odds))});");
                return;
            }
            w.Line($"{ls}.Create(lo.GetLower(), hi.GetLower()).StoreUnsafe(ref dst, {Nuint(Sum($"{at} / 2", evens))});");
            w.Line($"{ls}.Create(lo.GetUpper(), hi.GetUpper()).StoreUnsafe(ref dst, {Nuint(Sum($"{at} / 2", odds))});");
        }
        w.Open($"for (int i = 0; i <= W - {I(2 * lanes)}; i += {I(2 * lanes)})");
        Split("i");
        w.Close();
        if (width % (2 * lanes) > 1)
        {
            w.Line("// the last columns: a final pair of vectors from an even column, overlapping columns already split");
            w.OpenBlock();
            Split(I((width - 2 * lanes) & ~1));
            w.Close();
        }
        if (width % 2 == 1) w.Line($"Unsafe.Add(ref dst, {I(evens + (width - 1) / 2)}) = Unsafe.Add(ref src, {I(width - 1)});");
    }

    /// <summary>
    /// Output rows a depthwise block computes together: independent sums per vector of outputs instead of one chain of
    /// dependent multiply-adds, and each input row loaded once for each of the block's output rows that read it (3x3
    /// stride 1, four rows: 18 loads for 36 multiply-adds instead of 36). As many rows as the FMA units want sums
    /// (<see cref="DepthwiseChains"/>), or eight where the taps are broadcast from the weights and leave the registers to
    /// the sums. Eight rows against four at 512 bits measured 1-3 % slower on stride 2 (144 channels 56x56 -> 28x28).
    /// </summary>
    private int DepthwiseRowBlock(ConvLayer c, int lanes) => DepthwiseTapsInRegisters(c, lanes) ? DepthwiseChains(lanes) : 8;

    /// <summary>
    /// Independent sums that keep the FMA units busy: an FMA's 4-cycle latency times the FMAs issued per cycle, two
    /// at 256 bits and below; at 512 bits one on a CPU that splits them into halves (AMD Zen 4, where this was measured).
    /// With four (the row block alone) a 5x5 depthwise layer on 8-lane rows waited on its chains: 672 channels 14x14
    /// -> 7x7 took 47 µs, 34 with fourteen.
    /// </summary>
    private static int DepthwiseChains(int lanes) => lanes >= 16 ? 4 : 8;

    /// <summary>The taps stay in registers where they fit beside the sums a block needs, the input vector and a spare.</summary>
    private bool DepthwiseTapsInRegisters(ConvLayer c, int lanes) => c.Window.KH * c.Window.KW + DepthwiseChains(lanes) + 2 <= VectorRegisters;

    /// <summary>
    /// Partial sums per vector of outputs in a block of <paramref name="rows"/> rows, each over every so-many-th tap,
    /// added at the end: enough for <see cref="DepthwiseChains"/> in all, each over three taps or more.
    /// </summary>
    private static int DepthwiseSplits(ConvLayer c, int rows, int lanes) =>
        Math.Clamp((DepthwiseChains(lanes) + rows - 1) / rows, 1, Math.Max(1, c.Window.KH * c.Window.KW / 3));

    /// <summary>
    /// Vectors of outputs at ow: the sum over taps, then bias, bounds and store; one vector in each of
    /// <paramref name="rows"/> output rows, or (in one row) <paramref name="count"/> vectors along it. Where a block has
    /// fewer rows than <see cref="DepthwiseChains"/>, each sum is split into partial sums over alternate taps, so an
    /// output can round differently in a block of rows and in one row alone.
    /// </summary>
    private void DepthwiseVectors(CodeWriter w, ConvLayer c, Epilogue act, int count, int lanes, bool ragged = false, int rows = 1)
    {
        string lt = $"Vector{lanes * 32}<float>", ls = $"Vector{lanes * 32}";
        // Padded column 2 * ow + column is in the half of column's parity for stride 2.
        long Offset(int column) => c.Window.StrideW == 1 ? column : (column & 1) * PhaseWidth(c) + column / 2;
        bool inRegisters = DepthwiseTapsInRegisters(c, lanes);
        string Tap(int t) => inRegisters ? $"w{t}" : $"{ls}.Create(Unsafe.Add(ref wc, {I(t)}))";
        if (count == 1)
        {
            // Row r's sum over the taps t with t % splits == s: a{r} for s = 0 (from the bias), a{r}_{s} for the others.
            int splits = DepthwiseSplits(c, rows, lanes);
            string Part(int r, int s) => s == 0 ? $"a{r}" : $"a{r}_{s}";
            for (int r = 0; r < rows; r++) w.Line($"{lt} a{r} = bias;");
            for (int r = 0; r < rows; r++)
                for (int s = 1; s < splits; s++) w.Line($"{lt} {Part(r, s)} = {lt}.Zero;");
            w.Line($"{lt} v;");
            int reach = (rows - 1) * c.Window.StrideH + (c.Window.KH - 1) * c.Window.DilationH;
            for (int ir = 0; ir <= reach; ir++)
                for (int j = 0; j < c.Window.KW; j++)
                {
                    var readers = Enumerable.Range(0, rows).SelectMany(r => Enumerable.Range(0, c.Window.KH)
                        .Where(i => r * c.Window.StrideH + i * c.Window.DilationH == ir).Select(i => (Row: r, Tap: i * c.Window.KW + j))).ToList();
                    if (readers.Count == 0) continue;
                    w.Line($"v = {ls}.LoadUnsafe(ref row, {Nuint(Sum("ow", Sum(ir == 0 ? "" : $"{I(ir)} * Wp", Offset(j * c.Window.DilationW))))});");
                    foreach (var (r, t) in readers) w.Line($"{Part(r, t % splits)} = {Fma(Tap(t), "v", Part(r, t % splits), ls)};");
                }
            for (int r = 0; splits > 1 && r < rows; r++)
                w.Line($"a{r} = {PairwiseSum(Enumerable.Range(0, splits).Select(s => Part(r, s)).ToList())};");
            // In row order: a ragged row's last lanes run into the next row, which its own store then overwrites.
            for (int r = 0; r < rows; r++)
            {
                string value = VAct(act.Inner, $"a{r}", lt, ls), at = Nuint(Sum("ow", r * c.Window.OW));
                if (!ragged || r < rows - 1) w.Line($"({value}).StoreUnsafe(ref yo, {at});");
                else
                {
                    w.Line($"if ({Sum("oh", r)} < OH - 1 || n < {I(c.Batch * c.C - 1)}) ({value}).StoreUnsafe(ref yo, {at});");
                    w.Line($"else for (int i = 0; i < OW; i++) Unsafe.Add(ref yo, {I(r * c.Window.OW)} + i) = ({value})[i]; // the tensor's end: no lane past it");
                }
            }
            return;
        }
        var us = Enumerable.Range(0, count).ToArray();
        foreach (var u in us) w.Line($"{lt} a{u} = bias;");
        for (int i = 0; i < c.Window.KH; i++)
            for (int j = 0; j < c.Window.KW; j++)
            {
                int t = i * c.Window.KW + j;
                string at = Sum(i == 0 ? "" : $"{I(i * c.Window.DilationH)} * Wp", Offset(j * c.Window.DilationW));
                foreach (var u in us)
                    w.Line($"a{u} = {Fma(Tap(t), $"{ls}.LoadUnsafe(ref row, {Nuint(Sum(Sum("ow", u * lanes), at))})", $"a{u}", ls)};");
            }
        foreach (var u in us)
            w.Line($"({VAct(act.Inner, $"a{u}", lt, ls)}).StoreUnsafe(ref yo, {Nuint(Sum("ow", u * lanes))});");
    }

    /// <summary>Terms added in pairs, then pairs of pairs: a tree of additions, not one chain through all of them.</summary>
    private static string PairwiseSum(IReadOnlyList<string> terms) => terms.Count == 1 ? terms[0]
        : $"({PairwiseSum(terms.Take(terms.Count / 2).ToList())} + {PairwiseSum(terms.Skip(terms.Count / 2).ToList())})";
}
