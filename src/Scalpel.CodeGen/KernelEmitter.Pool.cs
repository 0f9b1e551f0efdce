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
        var vector = PoolVectorColumns(p);
        // Sizes the scalar windows read; the vector rows need fewer of them.
        bool scalar = vector is not { } v || v.Lo > 0 || v.Last + v.Lanes < p.Window.OW;
        w.Line($"const int Planes = {I(p.Planes)}, H = {I(p.Window.H)}, W = {I(p.Window.W)}, KH = {I(p.Window.KH)}, OH = {I(p.Window.OH)}, OW = {I(p.Window.OW)};");
        w.Line($"const int SH = {I(p.Window.StrideH)}, SW = {I(p.Window.StrideW)}, DH = {I(p.Window.DilationH)}, PT = {I(p.Window.PadTop)}, PL = {I(p.Window.PadLeft)};");
        if (scalar || !p.IsMax) w.Line($"const int KW = {I(p.Window.KW)};");
        if (scalar) w.Line($"const int DW = {I(p.Window.DilationW)};");
        if (!p.IsMax && (scalar || p.CountIncludePad)) w.Line($"const int PB = {I(p.Window.PadBottom)};");
        if (!p.IsMax && scalar) w.Line($"const int PR = {I(p.Window.PadRight)};");
        w.Open("for (int plane = 0; plane < Planes; plane++)");
        w.Line("ReadOnlySpan<float> xp = x.Slice(plane * H * W, H * W);");
        w.Line("Span<float> yp = y.Slice(plane * OH * OW, OH * OW);");
        w.Open("for (int oh = 0; oh < OH; oh++)");
        if (vector is null)
        {
            w.Open("for (int ow = 0; ow < OW; ow++)");
            ScalarPoolOutput(w, p);
            w.Close();
        }
        else
        {
            var (lo, last, lanes) = vector.Value;
            if (lo > 0)
            {
                w.Open($"for (int ow = 0; ow < {I(lo)}; ow++) // windows that reach the left padding");
                ScalarPoolOutput(w, p);
                w.Close();
            }
            // Stride 2 reads a whole load for half of it: the last windows inside the row may be a vector whose loads end
            // a few floats past the row, in the next plane's first rows, so in every plane but the last.
            int inside = Math.Min(p.Window.OW - 1, (p.Window.W - 1 + p.Window.PadLeft - (p.Window.KW - 1) * p.Window.DilationW) / p.Window.StrideW);
            int spill = inside - lanes + 1 > last && inside - lanes + 1 >= lo ? inside - lanes + 1 : -1;
            w.Open("// vectors of outputs whose windows lie inside the row");
            VectorPoolRow(w, p, lo, last, lanes, spill);
            w.Close();
            if (last + lanes < p.Window.OW)
            {
                string from = spill < 0 || inside + 1 == last + lanes ? I(last + lanes) : $"plane < Planes - 1 ? {I(inside + 1)} : {I(last + lanes)}";
                w.Open($"for (int ow = {from}; ow < OW; ow++) // windows that reach the right edge");
                ScalarPoolOutput(w, p);
                w.Close();
            }
        }
        w.Close();
        w.Close();
        w.Close();
    }

    /// <summary>Taps up to which a window inside the input is written out tap by tap.</summary>
    private const int UnrolledPoolTaps = 25;

    /// <summary>
    /// One output by scalar code. A window inside the input (no padding, no ceil-mode overhang) has every tap written
    /// out, with no bounds check, in the order the general loop takes them (the same sum): on maps too small for
    /// vectors, ConvNet's 6x6 -> 2x2 average pool among them, the checks cost more than the taps.
    /// </summary>
    private static void ScalarPoolOutput(CodeWriter w, PoolLayer p)
    {
        var win = p.Window;
        int reachH = (win.KH - 1) * win.DilationH + 1, reachW = (win.KW - 1) * win.DilationW + 1, taps = win.KH * win.KW;
        bool fast = taps <= UnrolledPoolTaps && reachH <= win.H && reachW <= win.W;
        if (fast)
        {
            w.Line("int ih0 = oh * SH - PT, iw0 = ow * SW - PL;");
            w.Open($"if ((uint)ih0 <= {I(win.H - reachH)} && (uint)iw0 <= {I(win.W - reachW)}) // the window lies inside the input");
            w.Line("ref float x0 = ref Unsafe.Add(ref MemoryMarshal.GetReference(xp), ih0 * W + iw0);");
            var values = Enumerable.Range(0, win.KH).SelectMany(i => Enumerable.Range(0, win.KW)
                .Select(j => $"Unsafe.Add(ref x0, {I(i * win.DilationH * win.W + j * win.DilationW)})")).ToList();
            w.Line($"float r = {values[0]};");
            foreach (var v in values.Skip(1)) w.Line(p.IsMax ? $"r = MathF.Max(r, {v});" : $"r += {v};");
            w.Line(p.IsMax ? "yp[oh * OW + ow] = r;" : $"yp[oh * OW + ow] = r / {I(taps)};");
            w.Line("continue;");
            w.Close();
        }
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
    }

    /// <summary>
    /// The output columns whose windows lie inside the row, as vectors: the first column, the start of the last
    /// vector (which may overlap the one before it), and outputs per vector. Loads are the target's width, or on
    /// rows too short for one the widest narrower vector that fits. Null where no vector of 128 bits fits or the
    /// horizontal stride is neither 1 nor 2 (stride 2 takes the even lanes of a load: half a vector of outputs,
    /// at least 128 bits).
    /// </summary>
    private (int Lo, int Last, int Lanes)? PoolVectorColumns(PoolLayer p)
    {
        if (p.Window.StrideW > 2) return null;
        int lo = (p.Window.PadLeft + p.Window.StrideW - 1) / p.Window.StrideW;
        for (int load = V; load >= 4 * p.Window.StrideW; load /= 2)
        {
            int lanes = load / p.Window.StrideW;
            // A vector load at column ow * SW - PL + j * DW reads `load` floats; the last tap's must end inside the row
            // (checked before dividing: a negative room divided by the stride would round up to 0).
            int room = p.Window.W - load - (p.Window.KW - 1) * p.Window.DilationW + p.Window.PadLeft;
            if (room < 0) continue;
            int last = Math.Min(p.Window.OW - lanes, room / p.Window.StrideW);
            if (last >= lo) return (lo, last, lanes);
        }
        return null;
    }

    /// <summary>
    /// Vectors of outputs across the row: per valid window row, each tap is one load (stride 2: a half of a load
    /// whose even lanes are shuffled first, one load for two neighbouring taps), reduced by max or sum; an average
    /// divides by the rows counted times the window width.
    /// </summary>
    /// <param name="spill">Where it is not -1, the start of one more vector in every plane but the last, whose loads
    /// read past the row into the next plane.</param>
    private void VectorPoolRow(CodeWriter w, PoolLayer p, int lo, int last, int lanes, int spill)
    {
        int load = lanes * p.Window.StrideW;
        string vt = $"Vector{lanes * 32}<float>", vs = $"Vector{lanes * 32}", ls = $"Vector{load * 32}";
        string evens = EvenLanesFirstOf(load);
        w.Line("ref float xr = ref MemoryMarshal.GetReference(xp);");
        w.Line("ref float yr = ref MemoryMarshal.GetReference(yp);");
        if (!p.IsMax)
        {
            w.Line("int rows = 0;");
            w.Line(p.CountIncludePad
                ? "for (int i = 0; i < KH; i++) { int ih = oh * SH - PT + i * DH; if (ih >= -PT && ih < H + PB) rows++; }"
                : "for (int i = 0; i < KH; i++) if ((uint)(oh * SH - PT + i * DH) < H) rows++;");
            w.Line($"{vt} scale = {vs}.Create(1f / (rows * KW));");
        }
        void Body()
        {
            w.Line(p.IsMax ? $"{vt} acc = {vs}.Create(float.NegativeInfinity);" : $"{vt} acc = {vt}.Zero;");
            w.Open("for (int i = 0; i < KH; i++)");
            w.Line("int ih = oh * SH - PT + i * DH;");
            w.Line("if ((uint)ih >= H) continue;");
            w.Line("ref float row = ref Unsafe.Add(ref xr, ih * W);");
            // Stride 2: one load at an even offset, its even lanes put first, holds the taps at that offset (lower half)
            // and one column further (upper half): a 3-wide window takes two loads, a 2-wide one a single load.
            var offsets = Enumerable.Range(0, p.Window.KW).Select(j => j * p.Window.DilationW).ToArray();
            if (p.Window.StrideW == 2)
                foreach (int shift in offsets.Select(o => o / 2).Distinct())
                    w.Line($"Vector{load * 32}<float> s{shift} = {ls}.Shuffle({ls}.LoadUnsafe(ref row, (nuint)(ow * SW - PL + {I(2 * shift)})), {evens});");
            foreach (int offset in offsets)
            {
                string value = p.Window.StrideW == 1 ? $"{ls}.LoadUnsafe(ref row, (nuint)(ow * SW - PL + {I(offset)}))" : $"s{offset / 2}.{(offset % 2 == 0 ? "GetLower" : "GetUpper")}()";
                // The running max first, as ONNX Runtime's pooling takes it: the CPU's max instruction, one per tap.
                w.Line(p.IsMax ? $"acc = {vs}.MaxNative(acc, {value});" : $"acc += {value};");
            }
            w.Close();
            w.Line($"({(p.IsMax ? "acc" : "acc * scale")}).StoreUnsafe(ref Unsafe.Add(ref yr, oh * OW), (nuint)ow);");
        }
        w.Line($"int ow = {I(lo)};");
        w.Open($"for (; ow <= {I(last)}; ow += {I(lanes)})");
        Body();
        w.Close();
        if ((last - lo) % lanes != 0)
        {
            w.Open("// the last vector, overlapping outputs already stored with the same values");
            w.Line($"ow = {I(last)};");
            Body();
            w.Close();
        }
        if (spill >= 0)
        {
            w.Open("if (plane < Planes - 1) // the last windows inside the row: loads past its end, into the next plane");
            w.Line($"ow = {I(spill)};");
            Body();
            w.Close();
        }
    }

    /// <summary>
    /// A max pool 2 wide with horizontal stride 2 whose windows never reach the padding (LeNet's and most CNNs'),
    /// at least half a vector of outputs wide: it runs on vectors of 4 or more lanes.
    /// </summary>
    private bool IsPairMaxPool(PoolLayer p) =>
        p.IsMax && p.Window.KW == 2 && p.Window.StrideW == 2 && p.Window.DilationW == 1 && p.Window.PadTop == 0 && p.Window.PadLeft == 0
        && (p.Window.OH - 1) * p.Window.StrideH + (p.Window.KH - 1) * p.Window.DilationH < p.Window.H && 2 * p.Window.OW <= p.Window.W && V >= 4 && p.Window.OW >= V / 2;

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
        w.Line($"const int Planes = {I(p.Planes)}, H = {I(p.Window.H)}, W = {I(p.Window.W)}, OH = {I(p.Window.OH)}, OW = {I(p.Window.OW)}, SH = {I(p.Window.StrideH)}, DH = {I(p.Window.DilationH)};");
        w.Line("ref float xr = ref MemoryMarshal.GetReference(x);");
        w.Line("ref float yr = ref MemoryMarshal.GetReference(y);");
        w.Open("for (int plane = 0; plane < Planes; plane++)");
        w.Open("for (int oh = 0; oh < OH; oh++)");
        for (int i = 0; i < p.Window.KH; i++)
            w.Line($"ref float x{i} = ref Unsafe.Add(ref xr, (plane * H + oh * SH + {I(i)} * DH) * W);");
        w.Line("ref float yo = ref Unsafe.Add(ref yr, (plane * OH + oh) * OW);");
        void Body()
        {
            w.Line($"{VT} v = {VS}.LoadUnsafe(ref x0, (nuint)(2 * ow));");
            for (int i = 1; i < p.Window.KH; i++) w.Line($"v = {VS}.MaxNative(v, {VS}.LoadUnsafe(ref x{i}, (nuint)(2 * ow)));");
            w.Line($"v = {VS}.MaxNative(v, {VS}.Shuffle(v, {swap}));");
            w.Line($"{VS}.Shuffle(v, {EvenLanesFirst}).GetLower().StoreUnsafe(ref yo, (nuint)ow);");
        }
        w.Line("int ow = 0;");
        w.Open($"for (; ow <= OW - {I(half)}; ow += {I(half)})");
        Body();
        w.Close();
        if (p.Window.OW % half != 0)
        {
            w.Open($"// the last {p.Window.OW % half} output(s): the final vector, overlapping outputs already stored");
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
                ? $"for (; i <= S - {I(V)}; i += {I(V)}) lanes = {VS}.MaxNative(lanes, {VS}.LoadUnsafe(ref xp, (nuint)i));"
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
