using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

internal sealed partial class KernelEmitter
{
    /// <summary>A dense convolution with its epilogue (its own activation when null).</summary>
    public void Conv(CodeWriter w, string method, ConvLayer c, Epilogue? epilogue = null)
    {
        var act = epilogue ?? Epilogue.Of(c.Activation);
        if (UsesDepthwiseKernel(c, act))
        {
            DepthwiseConv(w, method, c, act);
            return;
        }
        if (UsesWinogradTiles(c))
        {
            WinogradTilesConv(w, method, c, act);
            return;
        }
        if (UsesWinograd(c))
        {
            WinogradConv(w, method, c, act);
            return;
        }
        if (UsesChannelVectors(c))
        {
            ChannelConv(w, method, c, act);
            return;
        }
        if (UsesPaddedInput(c))
        {
            PaddedConv(w, method, c, act);
            return;
        }
        bool bias = c.Bias is not null;
        int inSize = c.C * c.Window.H * c.Window.W, outSize = c.M * c.Window.OH * c.Window.OW, cg = c.C / c.Group, mg = c.M / c.Group, hw = c.Window.OH * c.Window.OW;
        w.Line(c.Group == 1
            ? $"// Pointwise convolution as a GEMM: [{c.M} x {c.C}] weights times the [{c.C} x {hw}] input."
            : $"// Grouped pointwise convolution: per group of {I(c.Group)}, a GEMM of [{mg} x {cg}] weights times its [{cg} x {hw}] input channels.");
        string r = act.Residual ? ", ReadOnlySpan<float> residual" : "";
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y{r}, float[] w{(bias ? ", float[] b" : "")})");
        OpenSamples(w, c.Batch);
        int n = c.Batch;
        if (c.Group == 1)
            w.Line($"{method}_Gemm({Part("x", inSize, n)}, {Part("y", outSize, n)}{(act.Residual ? $", {Part("residual", outSize, n)}" : "")}, w{(bias ? ", b" : "")});");
        else
            w.Line($"for (int g = 0; g < {I(c.Group)}; g++) {method}_Gemm({Part("x", inSize, n, $"g * {I(cg * hw)}", cg * hw)}, " +
                $"{Part("y", outSize, n, $"g * {I(mg * hw)}", mg * hw)}{(act.Residual ? $", {Part("residual", outSize, n, $"g * {I(mg * hw)}", mg * hw)}" : "")}, " +
                $"w.AsSpan(g * {I(mg * cg)}, {I(mg * cg)}){(bias ? $", b.AsSpan(g * {I(mg)}, {I(mg)})" : "")});");
        w.Close();
        w.Close();
        w.Line();
        Gemm(w, method + "_Gemm", mg, cg, hw, bias, act, null);
    }

    /// <summary>Every dense convolution but a pointwise one reads a zero-padded copy of its input (no im2col).</summary>
    public static bool UsesPaddedInput(ConvLayer c) => !IsPointwise(c);

    /// <summary>
    /// Rows and columns of one phase plane of the padded input. Stride s splits the padded input into s x s
    /// planes (padded row r is row r / s of the planes r % s), so that every tap of a strided convolution reads a
    /// contiguous, shifted view of one plane, as a stride-1 tap reads the padded input itself (one plane).
    /// </summary>
    public static (int Hq, int Wq) PhaseSize(ConvLayer c) =>
        (c.Window.OH + (c.Window.KH - 1) * c.Window.DilationH / c.Window.StrideH, c.Window.OW + (c.Window.KW - 1) * c.Window.DilationW / c.Window.StrideW);

    private static int PlaneSize(ConvLayer c) => PhaseSize(c).Hq * PhaseSize(c).Wq;

    /// <summary>Offset of kernel column j from kernel column 0: column (j * DW) / SW of the planes of column phase (j * DW) % SW.</summary>
    private static int TapOffset(ConvLayer c, int j) => j * c.Window.DilationW % c.Window.StrideW * PlaneSize(c) + j * c.Window.DilationW / c.Window.StrideW;

    /// <summary>Floats of the padded copy: C x SH x SW planes, plus a vector of slack.</summary>
    public int PaddedBufferSize(ConvLayer c) => c.C / c.Group * c.Window.StrideH * c.Window.StrideW * PlaneSize(c) + V;

    /// <summary>
    /// Columns of one channel's wide output: OH rows computed over the plane width, all but the last row
    /// carrying Wq - OW columns of junk that the compaction skips (the last row stops at OW).
    /// </summary>
    public static int WideColumns(ConvLayer c) => (c.Window.OH - 1) * PhaseSize(c).Wq + c.Window.OW;

    /// <summary>Floats of the wide output ([M, WideColumns]).</summary>
    public int WideBufferSize(ConvLayer c) => c.M / c.Group * WideColumns(c);

    /// <summary>
    /// A grouped convolution runs group by group through buffers sized for one group, so a depthwise conv's
    /// padded channel and wide output stay in L1 between the copy, the GEMM and the compaction.
    /// </summary>
    private void PaddedConv(CodeWriter w, string method, ConvLayer c, Epilogue act)
    {
        bool bias = c.Bias is not null, grouped = c.Group > 1;
        var (hq, wq) = PhaseSize(c);
        int cg = c.C / c.Group, mg = c.M / c.Group, k = cg * c.Window.KH * c.Window.KW;
        int inSize = cg * c.Window.H * c.Window.W, outSize = mg * c.Window.OH * c.Window.OW;
        bool strided = c.Window.StrideH > 1 || c.Window.StrideW > 1;
        w.Line(strided
            ? $"// Strided convolution as an implicit GEMM: the zero-padded input is split into {c.Window.StrideH} x {c.Window.StrideW} phase planes of [{hq} x {wq}]"
            : $"// Convolution as an implicit GEMM over a zero-padded input copy [{cg} x {hq} x {wq}]:");
        bool rows = StoresRows(c);
        w.Line($"// each (channel, kernel row, kernel column) is a shifted view{(strided ? " of one plane" : "")}, so no im2col; " +
            (rows ? $"each output row's {c.Window.OW} columns are stored straight into the output." : $"outputs are computed {wq} wide, then compacted to {c.Window.OW}."));
        if (grouped)
            w.Line($"// {I(c.Group)} groups, one at a time: {mg} output channel(s) from {cg} input channel(s) each.");
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y{(act.Residual ? ", ReadOnlySpan<float> residual" : "")}, float[] w{(bias ? ", float[] b" : "")}, Span<float> padded{(rows ? "" : ", Span<float> wide")})");
        w.Line($"const int C = {I(cg)}, H = {I(c.Window.H)}, W = {I(c.Window.W)}, {(rows ? "" : $"M = {I(mg)}, OH = {I(c.Window.OH)}, OW = {I(c.Window.OW)}, ")}Hq = {I(hq)}, Wq = {I(wq)}, PT = {I(c.Window.PadTop)}, PL = {I(c.Window.PadLeft)};");
        if (strided) w.Line($"const int SH = {I(c.Window.StrideH)}, SW = {I(c.Window.StrideW)};");
        int count = c.Batch * c.Group;
        OpenSamples(w, count, grouped ? $" // sample n / {I(c.Group)}, group n % {I(c.Group)}" : "");
        w.Line($"ReadOnlySpan<float> xn = {Part("x", inSize, count)};");
        w.Line($"Span<float> yn = {Part("y", outSize, count)};");
        w.Line("// The padding border is never written, so it stays zero from allocation.");
        if (!strided) PaddedCopy(w, "Hq", "Wq");
        else PhaseSplitCopy(w, c);
        string target = rows ? "yn" + (act.Residual ? $", {Part("residual", outSize, count)}" : "") : "wide";
        if (grouped)
        {
            w.Line($"int g = n % {I(c.Group)};");
            w.Line($"{method}_Gemm(padded, {target}, w.AsSpan(g * {I(mg * k)}, {I(mg * k)}){(bias ? $", b.AsSpan(g * {I(mg)}, {I(mg)})" : "")});");
        }
        else w.Line($"{method}_Gemm(padded, {target}, w{(bias ? ", b" : "")});");
        if (!rows)
        {
            if (act.Residual) ResidualCompaction(w, c, act, outSize);
            else w.Line($"for (int m = 0; m < M; m++) for (int oh = 0; oh < OH; oh++) wide.Slice(m * {I(WideColumns(c))} + oh * Wq, OW).CopyTo(yn.Slice((m * OH + oh) * OW, OW));");
        }
        w.Close();
        w.Close();
        w.Line();
        if (rows) RowGemm(w, method + "_Gemm", mg, k, bias, act, c);
        else Gemm(w, method + "_Gemm", mg, k, WideColumns(c), bias, act with { Residual = false, Outer = Bounds.None }, c);
    }

    /// <summary>
    /// Whether a padded conv's GEMM stores each output row straight into the output rather than computing rows over
    /// the plane width into a wide buffer and compacting it: where the columns a row computes are no more than the
    /// plane width, so that the last vector recomputes no more than the wide rows' junk columns. Past that, the
    /// recomputed columns cost more than the compaction (3->64 7x7 stride 2 into 56 x 56 with a whole last vector:
    /// 643 against 574 µs). A half-width last vector is weighed by cost, since it runs its tile at lower efficiency.
    /// </summary>
    public bool StoresRows(ConvLayer c) =>
        c.Window.OW >= V && ((c.Window.OW + V - 1) / V * V <= PhaseSize(c).Wq || HalfTail(c) && HalfTailPays(c));

    /// <summary>
    /// Rows stored straight with a half-width last vector against wide rows and their compaction, in vector FMAs per
    /// output row: the half vector's tile counts 0.7 of a whole one (a row block's accumulators over one column, a
    /// broadcast per FMA) and the compaction half an FMA per output. Fitted on six shapes at 512 bits with 56-wide
    /// rows: 3->32 3x3 stride 2
    /// 69.6 -> 63.0 µs and 24->24 7x7 1711 -> 1601 straight, but 64->64 3x3 stride 2 2357 against 2444 wide (a plane
    /// one column wider than the row, and 576 products per output).
    /// </summary>
    private bool HalfTailPays(ConvLayer c)
    {
        double k = (double)c.C / c.Group * c.Window.KH * c.Window.KW;
        return (c.Window.OW / V + 0.7) * k < (double)PhaseSize(c).Wq / V * k + 0.5 * c.Window.OW;
    }

    /// <summary>
    /// Columns computed per output row stored straight: whole vectors, the last one ending at the row's end, or where
    /// the row's last columns fit half a vector (at 256 bits and more), a half-width vector for them. At 512 bits
    /// (on a CPU that runs a 512-bit FMA as two halves) the half vector costs half; elsewhere it saves the
    /// recomputed columns' stores.
    /// </summary>
    private int RowColumns(ConvLayer c) => HalfTail(c) ? c.Window.OW / V * V + V / 2 : (c.Window.OW + V - 1) / V * V;

    /// <summary>The last columns of a row stored straight are at most half a vector: a half-width vector takes them.</summary>
    private bool HalfTail(ConvLayer c) => V >= 8 && c.Window.OW % V != 0 && c.Window.OW % V <= V / 2;

    /// <summary>
    /// The implicit GEMM of a padded conv, stored row by row: output row oh, column ow reads input column
    /// oh * Wq + ow of each shifted plane view. Rows run in chunks whose input rows stay in cache while every
    /// output row block reuses them.
    /// </summary>
    private void RowGemm(CodeWriter w, string method, int m, int k, bool bias, Epilogue act, ConvLayer c)
    {
        var wq = PhaseSize(c).Wq;
        int oh = c.Window.OH, ow = c.Window.OW;
        OpenGemm(w, method, $"M = {I(m)}, K = {I(k)}, P = {I(oh * ow)}, OH = {I(oh)}, OW = {I(ow)}", bias, act, c);
        int columns = (oh - 1) * wq + ow, chunk = ColumnChunk(m, k, columns, c);
        int chunkRows = chunk >= columns ? oh : Math.Max(1, chunk / wq);
        if (chunkRows < oh) w.Line($"// output rows in chunks of {I(chunkRows)}, so the input rows a chunk reads stay in cache while every output row block reuses them");
        w.Open($"for (int oh0 = 0; oh0 < OH; oh0 += {I(chunkRows)})");
        w.Line($"int ohe = Math.Min(OH, oh0 + {I(chunkRows)});");
        GemmRowBlocks(w, m, rows => RowGemmBlock(w, rows, ow, bias, act, c));
        w.Close();
        w.Close();
    }

    /// <summary>The GEMM method's signature, sizes and references; the caller closes it.</summary>
    private static void OpenGemm(CodeWriter w, string method, string sizes, bool bias, Epilogue act, ConvLayer? padded)
    {
        w.Line(Hot);
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y{(act.Residual ? ", ReadOnlySpan<float> residual" : "")}, ReadOnlySpan<float> w{(bias ? ", ReadOnlySpan<float> b" : "")})");
        w.Line($"const int {sizes};");
        if (padded is not null)
        {
            var (hq, wq) = PhaseSize(padded);
            w.Line($"const int C = {I(padded.C / padded.Group)}, KH = {I(padded.Window.KH)}, KW = {I(padded.Window.KW)}, Hq = {I(hq)}, Wq = {I(wq)}, SH = {I(padded.Window.StrideH)}, SW = {I(padded.Window.StrideW)}, DH = {I(padded.Window.DilationH)};");
        }
        w.Line("ref float xr = ref MemoryMarshal.GetReference(x);");
        w.Line("ref float yr = ref MemoryMarshal.GetReference(y);");
        if (act.Residual) w.Line("ref float rr = ref MemoryMarshal.GetReference(residual);");
        w.Line("ref float wr = ref MemoryMarshal.GetReference(w);");
        if (bias) w.Line("ref float br = ref MemoryMarshal.GetReference(b);");
    }

    /// <summary>The output rows m in blocks of GemmRows, then the rows left over as one block.</summary>
    private void GemmRowBlocks(CodeWriter w, int m, Action<int> block)
    {
        w.Line("int m = 0;");
        if (m >= GemmRows)
        {
            w.Open($"for (; m <= M - {GemmRows}; m += {GemmRows})");
            block(GemmRows);
            w.Close();
        }
        if (m % GemmRows != 0)
        {
            w.Open($"for (; m < M; m += {m % GemmRows}) // the last {m % GemmRows} row(s), once");
            block(m % GemmRows);
            w.Close();
        }
    }

    /// <summary>A block of output channels over the chunk's rows: whole tiles, then single vectors, then an overlapping last vector.</summary>
    private void RowGemmBlock(CodeWriter w, int rows, int ow, bool bias, Epilogue act, ConvLayer c)
    {
        var r = RowBlockReferences(w, rows, bias, act);
        int cols = TileColumns(rows, ow);
        // A tile of n vectors (of half width where `half`) at column `at` of output row oh: input column p of the plane, output column q.
        void TileAt(string at, int n, bool half = false)
        {
            w.Line($"int p = oh * Wq + {at}, q = oh * OW + {at};");
            GemmTile(w, r, n, act, c, "q", half);
        }
        w.Open("for (int oh = oh0; oh < ohe; oh++)");
        w.Line("int ow = 0;");
        w.Open($"for (; ow <= OW - {cols * V}; ow += {cols * V})");
        TileAt("ow", cols);
        w.Close();
        int rest = ow % (cols * V) / V;
        if (rest > 0)
        {
            w.Open($"// {rest} more vector(s) of columns");
            TileAt("ow", rest);
            w.Close();
        }
        if (ow % V != 0 && HalfTail(c))
        {
            w.Open($"// the last {ow % V} columns: a {V / 2}-lane vector{(ow % V < V / 2 ? ", overlapping columns already stored with the same values" : "")}");
            TileAt($"OW - {I(V / 2)}", 1, half: true);
            w.Close();
        }
        else if (ow % V != 0)
        {
            w.Open($"// the last {ow % V} columns: the final vector, overlapping columns already stored with the same values");
            TileAt($"OW - {I(V)}", 1);
            w.Close();
        }
        w.Close();
        if (act.Gate is { } gate)
            foreach (var i in r)
                w.Line(GatePass(gate, $"MemoryMarshal.CreateSpan(ref Unsafe.Add(ref y{i}, oh0 * OW), (ohe - oh0) * OW)"));
    }

    /// <summary>Copies every channel of xn into the interior of padded, planes of rows x cols floats (constants of the kernel).</summary>
    private static void PaddedCopy(CodeWriter w, string rows, string cols) =>
        w.Line($"for (int c = 0; c < C; c++) for (int h = 0; h < H; h++) xn.Slice((c * H + h) * W, W).CopyTo(padded.Slice((c * {rows} + h + PT) * {cols} + PL, W));");

    /// <summary>
    /// The wide rows compacted to OW columns with the residual added on vectors (an overlapping last vector
    /// where OW is no multiple of V, scalar where it is under one vector).
    /// </summary>
    private void ResidualCompaction(CodeWriter w, ConvLayer c, Epilogue act, int outSize)
    {
        w.Line($"ReadOnlySpan<float> rn = {Part("residual", outSize, c.Batch * c.Group)};");
        w.Line("ref float wr0 = ref MemoryMarshal.GetReference(wide); ref float yr0 = ref MemoryMarshal.GetReference(yn); ref float rr0 = ref MemoryMarshal.GetReference(rn);");
        w.Open("for (int m = 0; m < M; m++) for (int oh = 0; oh < OH; oh++)");
        w.Line($"ref float from = ref Unsafe.Add(ref wr0, m * {I(WideColumns(c))} + oh * Wq);");
        w.Line("ref float to = ref Unsafe.Add(ref yr0, (m * OH + oh) * OW); ref float skip = ref Unsafe.Add(ref rr0, (m * OH + oh) * OW);");
        if (c.Window.OW >= V)
        {
            string Store(string at) =>
                $"({VAct(act.Outer, $"{VS}.LoadUnsafe(ref from, {at}) + {VS}.LoadUnsafe(ref skip, {at})")}).StoreUnsafe(ref to, {at});";
            w.Line($"for (nuint ow = 0; ow <= OW - {I(V)}; ow += {I(V)}) {Store("ow")}");
            if (c.Window.OW % V != 0) w.Line($"{Store($"(nuint)(OW - {I(V)})")} // the last vector, overlapping");
        }
        else w.Line($"for (int ow = 0; ow < OW; ow++) Unsafe.Add(ref to, ow) = {Act(act.Outer, "Unsafe.Add(ref from, ow) + Unsafe.Add(ref skip, ow)")};");
        w.Close();
    }

    /// <summary>
    /// Scatters each input row into the phase planes that some tap reads (a 1x1 stride-2 conv needs one of four).
    /// Horizontal stride 2 runs on vectors: one shuffle puts the even columns in the lower half and the odd ones
    /// in the upper half, each stored to its plane; the columns left over go one by one.
    /// </summary>
    private void PhaseSplitCopy(CodeWriter w, ConvLayer c)
    {
        var (hq, wq) = PhaseSize(c);
        var rowPhases = Enumerable.Range(0, c.Window.KH).Select(i => i * c.Window.DilationH % c.Window.StrideH).ToHashSet();
        var colPhases = Enumerable.Range(0, c.Window.KW).Select(j => j * c.Window.DilationW % c.Window.StrideW).ToHashSet();
        w.Line("ref float xr = ref MemoryMarshal.GetReference(xn);");
        w.Line("ref float pr = ref MemoryMarshal.GetReference(padded);");
        w.Open("for (int c = 0; c < C; c++)");
        w.Open("for (int h = 0; h < H; h++)");
        w.Line("int r = h + PT;");
        w.Line("if (r / SH >= Hq) break; // rows past the last window are never read");
        if (rowPhases.Count < c.Window.StrideH)
            w.Line($"if ({string.Join(" && ", rowPhases.Select(ph => $"r % SH != {I(ph)}"))}) continue; // no kernel row reads this phase");
        w.Line("ref float src = ref Unsafe.Add(ref xr, (c * H + h) * W);");
        w.Line("ref float dst = ref Unsafe.Add(ref pr, (c * SH + r % SH) * SW * (Hq * Wq) + r / SH * Wq);");
        int first = 0;
        if (c.Window.StrideW == 2 && V >= 4)
        {
            // Vectors start where column iw + PL is even; each covers V columns, V/2 per plane.
            int start = c.Window.PadLeft % 2, count = 0;
            while (start + (count + 1) * V <= c.Window.W && (start + c.Window.PadLeft) / 2 + (count + 1) * V / 2 <= wq) count++;
            if (count > 0)
            {
                w.Open($"for (int iw = {I(start)}; iw < {I(start + count * V)}; iw += {I(V)})");
                w.Line($"{VT} v = {VS}.Shuffle({VS}.LoadUnsafe(ref src, (nuint)iw), {EvenLanesFirst});");
                w.Line("int q = (iw + PL) / 2;");
                if (colPhases.Contains(0)) w.Line("v.GetLower().StoreUnsafe(ref dst, (nuint)q);");
                if (colPhases.Contains(1)) w.Line("v.GetUpper().StoreUnsafe(ref dst, (nuint)(Hq * Wq + q));");
                w.Close();
                if (start == 1) ScalarColumns(0, 1);
                first = start + count * V;
            }
        }
        ScalarColumns(first, c.Window.W);
        w.Close();
        w.Close();

        void ScalarColumns(int from, int to)
        {
            w.Open($"for (int iw = {I(from)}; iw < {I(to)}; iw++)");
            w.Line("int q = iw + PL;");
            w.Line("if (q / SW >= Wq) break;");
            if (colPhases.Count < c.Window.StrideW)
                w.Line($"if ({string.Join(" && ", colPhases.Select(ph => $"q % SW != {I(ph)}"))}) continue;");
            w.Line("Unsafe.Add(ref dst, q % SW * (Hq * Wq) + q / SW) = Unsafe.Add(ref src, iw);");
            w.Close();
        }
    }

    /// <summary>
    /// y[m, p] = act(sum_k w[m, k] * x[k, p] + b[m]), in blocks of GemmRows output rows. Each block keeps at
    /// least GemmAccumulators vector accumulators in flight (more columns for fewer rows), so FMA latency is
    /// hidden even in the last rows; a tail narrower than a vector is recomputed as the overlapping last vector.
    /// </summary>
    private void Gemm(CodeWriter w, string method, int m, int k, int p, bool bias, Epilogue act, ConvLayer? padded)
    {
        OpenGemm(w, method, $"M = {I(m)}, K = {I(k)}, P = {I(p)}", bias, act, padded);
        int chunk = ColumnChunk(m, k, p, padded);
        if (chunk < p)
        {
            w.Line($"// columns in chunks of {I(chunk)}, so the input rows a chunk reads stay in cache while every output row block reuses them");
            w.Open($"for (int p0 = 0; p0 < P; p0 += {I(chunk)})");
            w.Line($"int pe = Math.Min(P, p0 + {I(chunk)});");
        }
        GemmRowBlocks(w, m, rows => GemmRowBlock(w, rows, p, bias, act, padded, chunk < p));
        if (chunk < p) w.Close();
        w.Close();
    }

    /// <summary>Bytes of input a column chunk may read: about half of a 1-2 MB L2, leaving room for weights and outputs.</summary>
    private const int ChunkBytes = 256 * 1024;

    /// <summary>Vector columns a row block of this many rows computes per tile.</summary>
    private int TileColumns(int rows, int p) => Math.Min((GemmAccumulators + rows - 1) / rows, p / V);

    /// <summary>
    /// Columns per chunk: a whole number of every row block's tiles (so only the last chunk has partial tiles),
    /// and small enough that the input rows the chunk reads fit <see cref="ChunkBytes"/>. All of P when it fits.
    /// </summary>
    private int ColumnChunk(int m, int k, int p, ConvLayer? padded)
    {
        if (p < V) return p;
        int unit = V;
        foreach (var rows in new[] { m >= GemmRows ? GemmRows : 0, m % GemmRows }.Where(r => r > 0))
            unit = Lcm(unit, TileColumns(rows, p) * V);
        // A padded conv's taps of one kernel row share an input row.
        int inputRows = padded is null ? k : k / padded.Window.KW;
        int chunk = Math.Max(unit, ChunkBytes / 4 / inputRows / unit * unit);
        return chunk * 2 <= p ? chunk : p;

        static int Lcm(int a, int b) => a / Gcd(a, b) * b;
        static int Gcd(int a, int b) => b == 0 ? a : Gcd(b, a % b);
    }

    /// <summary>
    /// Vector accumulators a GEMM block keeps in flight: at least FMA latency (4 cycles) times its issue rate (2 per
    /// cycle); twice that with 16 registers, three times with 32 (AVX-512): the 8-row block's three vectors of
    /// columns then load 8 broadcasts per 24 FMAs rather than per 16 (1x1 convs on 56x56 maps 1-14 % faster alone).
    /// </summary>
    private int GemmAccumulators => (target.SimdBits >= 512 ? 3 : 2) * GemmRows;

    private void GemmRowBlock(CodeWriter w, int rows, int p, bool bias, Epilogue act, ConvLayer? padded, bool chunked)
    {
        GemmRowBlockSums(w, rows, p, bias, act, padded, chunked);
        if (act.Gate is { } gate)
            foreach (var i in Enumerable.Range(0, rows))
                w.Line(GatePass(gate, chunked ? $"MemoryMarshal.CreateSpan(ref Unsafe.Add(ref y{i}, p0), pe - p0)" : $"MemoryMarshal.CreateSpan(ref y{i}, P)"));
    }

    /// <summary>The references of output rows m.. of a block (weights, outputs, skip connection) and their biases; returns the rows.</summary>
    private static int[] RowBlockReferences(CodeWriter w, int rows, bool bias, Epilogue act)
    {
        var r = Enumerable.Range(0, rows).ToArray();
        foreach (var i in r)
            w.Line($"ref float w{i} = ref Unsafe.Add(ref wr, {Scaled("m", i, "K")}); ref float y{i} = ref Unsafe.Add(ref yr, {Scaled("m", i, "P")});" +
                (act.Residual ? $" ref float r{i} = ref Unsafe.Add(ref rr, {Scaled("m", i, "P")});" : ""));
        foreach (var i in r)
            w.Line(bias ? $"float b{i} = Unsafe.Add(ref br, {Sum("m", i)});" : $"const float b{i} = 0f;");
        return r;
    }

    /// <summary>The row block's outputs: tiles of vector accumulators, or scalar sums under one vector of columns.</summary>
    private void GemmRowBlockSums(CodeWriter w, int rows, int p, bool bias, Epilogue act, ConvLayer? padded, bool chunked)
    {
        var r = RowBlockReferences(w, rows, bias, act);
        if (p < V)
        {
            GemmScalarColumns(w, r, act, padded);
            return;
        }
        int cols = TileColumns(rows, p);
        int rest = p % (cols * V) / V;
        w.Line(chunked ? "int p = p0;" : "int p = 0;");
        w.Open($"for (; p <= {(chunked ? "pe" : "P")} - {cols * V}; p += {cols * V})");
        GemmTile(w, r, cols, act, padded);
        w.Close();
        if (rest == 0 && p % V == 0) return;
        // Every chunk but the last is a whole number of tiles.
        if (chunked) w.Open("if (pe == P)");
        if (rest > 0)
        {
            w.Open($"// {rest} more vector(s) of columns");
            GemmTile(w, r, rest, act, padded);
            w.Close();
            w.Line($"p += {rest * V};");
        }
        if (p % V != 0)
        {
            w.Open($"// the last {p % V} columns: the final vector, overlapping columns already stored with the same values");
            w.Line($"p = P - {V};");
            GemmTile(w, r, 1, act, padded);
            w.Close();
        }
        if (chunked) w.Close();
    }

    /// <summary>
    /// One rows x cols tile of vector accumulators at input column p, stored at output column <paramref name="at"/>:
    /// the k loop, then bias, activation, store; on vectors of half the target's width where <paramref name="half"/>.
    /// </summary>
    private void GemmTile(CodeWriter w, int[] r, int cols, Epilogue act, ConvLayer? padded, string at = "p", bool half = false)
    {
        int lanes = half ? V / 2 : V;
        string vt = $"Vector{lanes * 32}<float>", vs = $"Vector{lanes * 32}";
        var c = Enumerable.Range(0, cols).ToArray();
        foreach (var i in r) w.Line(string.Join(" ", c.Select(j => $"{vt} a{i}{j} = {vt}.Zero;")));
        int taps = OpenK(w, padded);
        for (int t = 0; t < taps; t++)
        {
            int offset = padded is null ? 0 : TapOffset(padded, t);
            string dk = t == 0 ? "k" : $"k + {I(t)}";
            foreach (var j in c) w.Line($"{vt} x{j}_{t} = {vs}.LoadUnsafe(ref xk, {I(offset + j * lanes)});");
            foreach (var i in r)
            {
                w.Line($"{vt} w{i}_{t} = {vs}.Create(Unsafe.Add(ref w{i}, {dk}));");
                foreach (var j in c) w.Line($"a{i}{j} = {Fma($"w{i}_{t}", $"x{j}_{t}", $"a{i}{j}", vs)};");
            }
        }
        CloseK(w, padded);
        foreach (var i in r)
            foreach (var j in c)
            {
                string value = VAct(act.Inner, $"a{i}{j} + {vs}.Create(b{i})", vt, vs);
                if (act.Residual) value = VAct(act.Outer, $"{value} + {vs}.LoadUnsafe(ref r{i}, {Nuint(Sum(at, j * lanes))})", vt, vs);
                w.Line($"({value}).StoreUnsafe(ref y{i}, {Nuint(Sum(at, j * lanes))});");
            }
    }

    /// <summary>Fewer columns than one vector: scalar sums.</summary>
    private static void GemmScalarColumns(CodeWriter w, int[] r, Epilogue act, ConvLayer? padded)
    {
        w.Open("for (int p = 0; p < P; p++)");
        foreach (var i in r) w.Line($"float s{i} = b{i};");
        int taps = OpenK(w, padded);
        for (int t = 0; t < taps; t++)
        {
            string dx = padded is null ? "0" : I(TapOffset(padded, t));
            string dk = t == 0 ? "k" : $"k + {I(t)}";
            w.Line($"float x_{t} = Unsafe.Add(ref xk, {dx});");
            foreach (var i in r) w.Line($"s{i} += Unsafe.Add(ref w{i}, {dk}) * x_{t};");
        }
        CloseK(w, padded);
        foreach (var i in r)
            w.Line($"Unsafe.Add(ref y{i}, p) = {(act.Residual ? Act(act.Outer, $"{Act(act.Inner, $"s{i}")} + Unsafe.Add(ref r{i}, p)") : Act(act.Inner, $"s{i}"))};");
        w.Close();
    }

    /// <summary>
    /// Opens the loop(s) over k and binds xk to row k of the right-hand matrix at column p; returns how many
    /// consecutive k (taps) each iteration covers. A padded conv's kernel row is unrolled: its KW taps are
    /// constant offsets of one input row.
    /// </summary>
    private static int OpenK(CodeWriter w, ConvLayer? padded)
    {
        if (padded is null)
        {
            w.Open("for (int k = 0; k < K; k++)");
            w.Line("ref float xk = ref Unsafe.Add(ref xr, k * P + p);");
            return 1;
        }
        w.Open("for (int c = 0; c < C; c++)");
        w.Open("for (int i = 0; i < KH; i++)");
        w.Line("int k = (c * KH + i) * KW;");
        w.Line("// kernel row i reads row (i * DH) / SH of the planes of row phase (i * DH) % SH");
        w.Line("ref float xk = ref Unsafe.Add(ref xr, (c * SH + i * DH % SH) * SW * (Hq * Wq) + i * DH / SH * Wq + p);");
        return padded.Window.KW;
    }

    /// <summary>Closes what <see cref="OpenK"/> opened.</summary>
    private static void CloseK(CodeWriter w, ConvLayer? padded)
    {
        w.Close();
        if (padded is not null) w.Close();
    }
}
