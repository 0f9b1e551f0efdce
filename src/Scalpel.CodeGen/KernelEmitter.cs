using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

/// <summary>Emits one kernel method per layer, with its sizes as constants and vectors of the target's width.</summary>
internal sealed class KernelEmitter(CodeTarget target)
{
    /// <summary>Output rows computed together by the dense mat-vec (one input load feeds this many FMAs).</summary>
    private const int DenseRows = 4;
    /// <summary>Output channels computed together by the conv GEMM micro-kernel.</summary>
    private const int GemmRows = 4;

    private int V => target.Lanes;
    private string VT => $"Vector{target.SimdBits}<float>";
    private string VS => $"Vector{target.SimdBits}";

    private string Fma(string a, string b, string acc) =>
        target.Fma ? $"{VS}.FusedMultiplyAdd({a}, {b}, {acc})" : $"{VS}.Add({VS}.Multiply({a}, {b}), {acc})";

    private const string Hot = "[MethodImpl(MethodImplOptions.AggressiveOptimization)]";

    /// <summary>Shuffle indices that put a vector's even lanes in its lower half and its odd lanes in the upper half.</summary>
    private string EvenLanesFirst => $"{VS}.Create({string.Join(", ", Enumerable.Range(0, V).Select(i => I(2 * i % V + 2 * i / V)))})";

    private static string Act(Activation a, string value) => a == Activation.Relu ? $"MathF.Max({value}, 0f)" : value;
    private string VAct(Activation a, string value) => a == Activation.Relu ? $"{VS}.Max({value}, {VT}.Zero)" : value;

    private static bool IsPointwise(ConvLayer c) =>
        c.KH == 1 && c.KW == 1 && c.StrideH == 1 && c.StrideW == 1 && c.PadTop == 0 && c.PadLeft == 0 && c.OH == c.H && c.OW == c.W;

    // ---- Dense: register-blocked mat-vec per input row -------------------------------------------------

    public void Dense(CodeWriter w, string method, DenseLayer d)
    {
        var bias = d.Bias is not null || d.BiasFull is not null;
        bool batched = !d.TransposeInput && d.BiasFull is null;
        w.Line(Hot);
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y, float[] w{(bias ? ", float[] b" : "")}{(d.TransposeInput ? ", Span<float> t" : "")}{(batched ? ", int count" : "")})");
        w.Line($"const int K = {I(d.K)}, N = {I(d.N)};");
        w.Line(batched ? $"int rows = count * {I(d.M)};" : $"const int rows = {I(d.M)};");
        if (d.TransposeInput)
        {
            w.Line("// Gemm transA: the input is stored [K, rows]; transpose it once.");
            w.Line("for (int k = 0; k < K; k++) for (int r = 0; r < rows; r++) t[r * K + k] = x[k * rows + r];");
            w.Line("ref float xr = ref MemoryMarshal.GetReference(t);");
        }
        else w.Line("ref float xr = ref MemoryMarshal.GetReference(x);");
        w.Line("ref float yr = ref MemoryMarshal.GetReference(y);");
        w.Line("ref float wr = ref MemoryMarshal.GetArrayDataReference(w);");
        if (bias) w.Line("ref float br = ref MemoryMarshal.GetArrayDataReference(b);");
        w.Line("int m = 0;");
        if (batched)
        {
            w.Line($"// {DenseSamples} input rows at a time: each weight vector loaded feeds {DenseSamples} FMAs.");
            w.Open($"for (; m <= rows - {DenseSamples}; m += {DenseSamples})");
            for (int s = 0; s < DenseSamples; s++)
                w.Line($"ref float x{s}m = ref Unsafe.Add(ref xr, (m + {s}) * K); ref float y{s}m = ref Unsafe.Add(ref yr, (m + {s}) * N);");
            w.Line("int n = 0;");
            int tile = TileRows;
            if (d.N >= tile)
            {
                w.Open($"for (; n <= N - {tile}; n += {tile})");
                DenseTile(w, d, DenseSamples, tile);
                w.Close();
            }
            if (d.N % tile != 0)
            {
                w.Open("for (; n < N; n++)");
                DenseTile(w, d, DenseSamples, 1);
                w.Close();
            }
            w.Close();
        }
        w.Open("for (; m < rows; m++)");
        w.Line("ref float xm = ref Unsafe.Add(ref xr, m * K);");
        w.Line("ref float ym = ref Unsafe.Add(ref yr, m * N);");
        w.Line("int n = 0;");
        if (d.N >= DenseRows)
        {
            w.Open($"for (; n <= N - {DenseRows}; n += {DenseRows})");
            DenseRowBlock(w, d, DenseRows);
            w.Close();
        }
        if (d.N % DenseRows != 0)
        {
            w.Open("for (; n < N; n++)");
            DenseRowBlock(w, d, 1);
            w.Close();
        }
        w.Close();
        w.Close();
    }

    /// <summary>
    /// Sparse dense-layer kernels. CSR: one index per weight, scalar. Grouped CSR: per kept group one vector
    /// load of weights, one of contiguous inputs and one FMA; a dense tail covers the last K % G columns.
    /// Both run 4 samples per pass so each index and weight load serves 4 inputs.
    /// </summary>
    public void SparseDense(CodeWriter w, string method, DenseLayer d, SparseMatrix m)
    {
        bool grouped = d.Format == WeightFormat.GroupedCsr;
        if (grouped && m.GroupWidth % V != 0)
            throw new InvalidOperationException($"group width {m.GroupWidth} is not a multiple of the target's {V} lanes");
        string col = m.IndexBytes switch { 1 => "byte", 2 => "ushort", _ => "int" };
        string row = m.RowStartBytes == 2 ? "ushort" : "int";
        bool bias = d.Bias is not null;
        w.Line(Hot);
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y, float[] values, {col}[] columns, {row}[] rowStarts{(m.TailWidth > 0 ? ", float[] tail" : "")}{(bias ? ", float[] b" : "")}, int count)");
        w.Line($"const int K = {I(d.K)}, N = {I(d.N)}{(grouped ? $", G = {I(m.GroupWidth)}" : "")}{(m.TailWidth > 0 ? $", Full = {I(m.FullColumns)}, T = {I(m.TailWidth)}" : "")};");
        w.Line($"// {m.Entries} {(grouped ? "groups" : "nonzeros")} kept of {(grouped ? (long)d.N * (m.FullColumns / m.GroupWidth) : (long)d.N * d.K)}.");
        w.Line($"int rows = count * {I(d.M)};");
        w.Line("ref float xr = ref MemoryMarshal.GetReference(x);");
        w.Line("ref float yr = ref MemoryMarshal.GetReference(y);");
        w.Line("ref float vr = ref MemoryMarshal.GetArrayDataReference(values);");
        w.Line($"ref {col} cr = ref MemoryMarshal.GetArrayDataReference(columns);");
        if (m.TailWidth > 0) w.Line("ref float tr = ref MemoryMarshal.GetArrayDataReference(tail);");
        if (bias) w.Line("ref float br = ref MemoryMarshal.GetArrayDataReference(b);");
        w.Line("int m = 0;");
        foreach (var samples in new[] { DenseSamples, 1 })
        {
            var ss = Enumerable.Range(0, samples).ToArray();
            w.Open(samples > 1 ? $"for (; m <= rows - {samples}; m += {samples})" : "for (; m < rows; m++)");
            foreach (var s in ss)
                w.Line($"ref float x{s}m = ref Unsafe.Add(ref xr, (m + {s}) * K); ref float y{s}m = ref Unsafe.Add(ref yr, (m + {s}) * N);");
            w.Open("for (int n = 0; n < N; n++)");
            w.Line("int start = int.CreateTruncating(rowStarts[n]), end = int.CreateTruncating(rowStarts[n + 1]);");
            if (grouped && samples == 1 && m.GroupWidth == V)
            {
                // One sample: four accumulators over consecutive groups, so the FMAs do not wait on each other.
                w.Line($"{VT} a0 = {VT}.Zero, a1 = {VT}.Zero, a2 = {VT}.Zero, a3 = {VT}.Zero;");
                w.Line("int j = start;");
                w.Open("for (; j <= end - 4; j += 4)");
                for (int u = 0; u < 4; u++)
                    w.Line($"a{u} = {Fma($"{VS}.LoadUnsafe(ref vr, (nuint)((j + {u}) * G))", $"{VS}.LoadUnsafe(ref x0m, (nuint)Unsafe.Add(ref cr, j + {u}))", $"a{u}")};");
                w.Close();
                w.Line($"for (; j < end; j++) a0 = {Fma($"{VS}.LoadUnsafe(ref vr, (nuint)(j * G))", $"{VS}.LoadUnsafe(ref x0m, (nuint)Unsafe.Add(ref cr, j))", "a0")};");
                w.Line($"float s0 = {VS}.Sum((a0 + a1) + (a2 + a3));");
                if (m.TailWidth > 0)
                    w.Line("for (int t = 0; t < T; t++) s0 += Unsafe.Add(ref tr, n * T + t) * Unsafe.Add(ref x0m, Full + t);");
            }
            else if (grouped)
            {
                int vectors = m.GroupWidth / V;
                foreach (var s in ss) w.Line($"{VT} a{s} = {VT}.Zero;");
                w.Open("for (int j = start; j < end; j++)");
                w.Line("nuint c = (nuint)Unsafe.Add(ref cr, j);");
                w.Line("ref float g = ref Unsafe.Add(ref vr, j * G);");
                for (int q = 0; q < vectors; q++)
                {
                    w.Line($"{VT} w{q} = {VS}.LoadUnsafe(ref g, {q * V});");
                    foreach (var s in ss) w.Line($"a{s} = {Fma($"w{q}", $"{VS}.LoadUnsafe(ref x{s}m, c + {q * V})", $"a{s}")};");
                }
                w.Close();
                foreach (var s in ss) w.Line($"float s{s} = {VS}.Sum(a{s});");
                if (m.TailWidth > 0)
                {
                    w.Open("for (int t = 0; t < T; t++)");
                    w.Line("float wt = Unsafe.Add(ref tr, n * T + t);");
                    foreach (var s in ss) w.Line($"s{s} += wt * Unsafe.Add(ref x{s}m, Full + t);");
                    w.Close();
                }
            }
            else
            {
                foreach (var s in ss) w.Line($"float s{s} = 0f;");
                w.Open("for (int j = start; j < end; j++)");
                w.Line("int c = Unsafe.Add(ref cr, j);");
                w.Line("float v = Unsafe.Add(ref vr, j);");
                foreach (var s in ss) w.Line($"s{s} += v * Unsafe.Add(ref x{s}m, c);");
                w.Close();
            }
            foreach (var s in ss)
                w.Line($"Unsafe.Add(ref y{s}m, n) = {Act(d.Activation, bias ? $"s{s} + Unsafe.Add(ref br, n)" : $"s{s}")};");
            w.Close();
            w.Close();
        }
        w.Close();
    }

    /// <summary>The conv's weights as a dense layer over patch rows: N = output channels, K = C * KH * KW.</summary>
    public static DenseLayer AsDense(ConvLayer c) => new(c.Node, c.Inputs[0], c.Output, [c.OH * c.OW, c.M])
    {
        M = 1, K = c.C * c.KH * c.KW, N = c.M, Weight = c.Weight, Bias = c.Bias, Activation = c.Activation, Format = c.Format, GroupWidth = c.GroupWidth,
    };

    /// <summary>
    /// Sparse convolution (low-parallelism targets): im2col into patch rows, the sparse dense-layer kernel over
    /// all output positions (one vector load of weights and one of contiguous patch values per group), then a
    /// transpose back to channel-major.
    /// </summary>
    public void SparseConv(CodeWriter w, string method, ConvLayer c, DenseLayer asDense, SparseMatrix m)
    {
        string col = m.IndexBytes switch { 1 => "byte", 2 => "ushort", _ => "int" };
        string row = m.RowStartBytes == 2 ? "ushort" : "int";
        bool bias = c.Bias is not null, tail = m.TailWidth > 0;
        int inSize = c.C * c.H * c.W, positions = c.OH * c.OW, outSize = c.M * positions;
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y, float[] values, {col}[] columns, {row}[] rowStarts{(tail ? ", float[] tail" : "")}{(bias ? ", float[] b" : "")}, Span<float> patches, Span<float> transposed)");
        w.Open($"for (int n = 0; n < {I(c.Batch)}; n++)");
        w.Line($"{method}_Patches(x.Slice(n * {I(inSize)}, {I(inSize)}), patches);");
        w.Line($"{method}_Rows(patches, transposed, values, columns, rowStarts{(tail ? ", tail" : "")}{(bias ? ", b" : "")}, {I(positions)});");
        w.Line($"Span<float> yn = y.Slice(n * {I(outSize)}, {I(outSize)});");
        w.Line($"for (int p = 0; p < {I(positions)}; p++) for (int m = 0; m < {I(c.M)}; m++) yn[m * {I(positions)} + p] = transposed[p * {I(c.M)} + m];");
        w.Close();
        w.Close();
        w.Line();
        w.Open($"private static void {method}_Patches(ReadOnlySpan<float> x, Span<float> patches)");
        w.Line($"const int C = {I(c.C)}, H = {I(c.H)}, W = {I(c.W)}, KH = {I(c.KH)}, KW = {I(c.KW)}, OH = {I(c.OH)}, OW = {I(c.OW)}, K = C * KH * KW;");
        w.Line($"const int SH = {I(c.StrideH)}, SW = {I(c.StrideW)}, DH = {I(c.DilationH)}, DW = {I(c.DilationW)}, PT = {I(c.PadTop)}, PL = {I(c.PadLeft)};");
        w.Open("for (int oh = 0; oh < OH; oh++)");
        w.Open("for (int ow = 0; ow < OW; ow++)");
        w.Line("Span<float> patch = patches.Slice((oh * OW + ow) * K, K);");
        w.Open("for (int c = 0; c < C; c++)");
        w.Open("for (int i = 0; i < KH; i++)");
        w.Line("int ih = oh * SH - PT + i * DH;");
        w.Open("for (int j = 0; j < KW; j++)");
        w.Line("int iw = ow * SW - PL + j * DW;");
        w.Line("patch[(c * KH + i) * KW + j] = (uint)ih < H && (uint)iw < W ? x[(c * H + ih) * W + iw] : 0f;");
        w.Close();
        w.Close();
        w.Close();
        w.Close();
        w.Close();
        w.Close();
        w.Line();
        SparseDense(w, method + "_Rows", asDense, m);
    }

    /// <summary>Input rows (samples) per dense tile.</summary>
    private const int DenseSamples = 4;

    /// <summary>Output neurons per dense tile: 4 x 4 accumulators fit 32 vector registers, 4 x 2 fit 16.</summary>
    private int TileRows => target.SimdBits >= 512 ? 4 : 2;

    /// <summary>A samples x rows tile of dot products over K.</summary>
    private void DenseTile(CodeWriter w, DenseLayer d, int samples, int rows)
    {
        var ss = Enumerable.Range(0, samples).ToArray();
        var rr = Enumerable.Range(0, rows).ToArray();
        foreach (var r in rr)
            w.Line(r == 0 ? "ref float w0 = ref Unsafe.Add(ref wr, n * K);" : $"ref float w{r} = ref Unsafe.Add(ref w{r - 1}, K);");
        int full = d.K / V * V;
        if (full > 0)
        {
            foreach (var s in ss) w.Line(string.Join(" ", rr.Select(r => $"{VT} a{s}{r} = {VT}.Zero;")));
            w.Open($"for (int k = 0; k < {I(full)}; k += {V})");
            foreach (var s in ss) w.Line($"{VT} x{s} = {VS}.LoadUnsafe(ref x{s}m, (nuint)k);");
            foreach (var r in rr)
            {
                w.Line($"{VT} wv{r} = {VS}.LoadUnsafe(ref w{r}, (nuint)k);");
                foreach (var s in ss) w.Line($"a{s}{r} = {Fma($"wv{r}", $"x{s}", $"a{s}{r}")};");
            }
            w.Close();
            foreach (var s in ss) w.Line(string.Join(" ", rr.Select(r => $"float s{s}{r} = {VS}.Sum(a{s}{r});")));
        }
        else foreach (var s in ss) w.Line(string.Join(" ", rr.Select(r => $"float s{s}{r} = 0f;")));
        if (full < d.K)
        {
            w.Open($"for (int k = {I(full)}; k < K; k++)");
            foreach (var r in rr)
            {
                w.Line($"float wk{r} = Unsafe.Add(ref w{r}, k);");
                foreach (var s in ss) w.Line($"s{s}{r} += wk{r} * Unsafe.Add(ref x{s}m, k);");
            }
            w.Close();
        }
        foreach (var s in ss)
            foreach (var r in rr)
            {
                var index = r == 0 ? "n" : $"n + {r}";
                var value = d.Bias is not null ? $"s{s}{r} + Unsafe.Add(ref br, {index})" : $"s{s}{r}";
                w.Line($"Unsafe.Add(ref y{s}m, {index}) = {Act(d.Activation, value)};");
            }
    }

    private void DenseRowBlock(CodeWriter w, DenseLayer d, int rows)
    {
        var r = Enumerable.Range(0, rows).ToArray();
        foreach (var i in r)
            w.Line(i == 0 ? "ref float w0 = ref Unsafe.Add(ref wr, n * K);" : $"ref float w{i} = ref Unsafe.Add(ref w{i - 1}, K);");
        int full = d.K / V * V;
        if (full > 0)
        {
            w.Line(string.Join(" ", r.Select(i => $"{VT} a{i} = {VT}.Zero;")));
            w.Open($"for (int k = 0; k < {I(full)}; k += {V})");
            w.Line($"{VT} xv = {VS}.LoadUnsafe(ref xm, (nuint)k);");
            foreach (var i in r) w.Line($"a{i} = {Fma($"{VS}.LoadUnsafe(ref w{i}, (nuint)k)", "xv", $"a{i}")};");
            w.Close();
            w.Line(string.Join(" ", r.Select(i => $"float s{i} = {VS}.Sum(a{i});")));
        }
        else w.Line(string.Join(" ", r.Select(i => $"float s{i} = 0f;")));
        if (full < d.K)
        {
            w.Open($"for (int k = {I(full)}; k < K; k++)");
            w.Line("float xk = Unsafe.Add(ref xm, k);");
            foreach (var i in r) w.Line($"s{i} += Unsafe.Add(ref w{i}, k) * xk;");
            w.Close();
        }
        foreach (var i in r)
        {
            var index = i == 0 ? "n" : $"n + {i}";
            var value = d.Bias is not null ? $"s{i} + Unsafe.Add(ref br, {index})"
                : d.BiasFull is not null ? $"s{i} + Unsafe.Add(ref br, m * N + {index})" : $"s{i}";
            w.Line($"Unsafe.Add(ref ym, {index}) = {Act(d.Activation, value)};");
        }
    }

    // ---- Conv ------------------------------------------------------------------------------------------

    public void Conv(CodeWriter w, string method, ConvLayer c)
    {
        if (c.Group != 1)
        {
            DirectConv(w, method, c);
            return;
        }
        if (UsesPaddedInput(c))
        {
            PaddedConv(w, method, c);
            return;
        }
        bool bias = c.Bias is not null;
        int inSize = c.C * c.H * c.W, outSize = c.M * c.OH * c.OW;
        w.Line($"// Pointwise convolution as a GEMM: [{c.M} x {c.C}] weights times the [{c.C} x {c.OH * c.OW}] input.");
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y, float[] w{(bias ? ", float[] b" : "")})");
        w.Open($"for (int n = 0; n < {I(c.Batch)}; n++)");
        w.Line($"{method}_Gemm(x.Slice(n * {I(inSize)}, {I(inSize)}), y.Slice(n * {I(outSize)}, {I(outSize)}), w{(bias ? ", b" : "")});");
        w.Close();
        w.Close();
        w.Line();
        Gemm(w, method + "_Gemm", c.M, c.C, c.OH * c.OW, bias, c.Activation, null);
    }

    /// <summary>Every dense, ungrouped convolution but a pointwise one reads a zero-padded copy of its input (no im2col).</summary>
    public static bool UsesPaddedInput(ConvLayer c) => c.Group == 1 && !IsPointwise(c);

    /// <summary>
    /// Rows and columns of one phase plane of the padded input. Stride s splits the padded input into s x s
    /// planes (padded row r is row r / s of the planes r % s), so that every tap of a strided convolution reads a
    /// contiguous, shifted view of one plane, as a stride-1 tap reads the padded input itself (one plane).
    /// </summary>
    public static (int Hq, int Wq) PhaseSize(ConvLayer c) =>
        (c.OH + (c.KH - 1) * c.DilationH / c.StrideH, c.OW + (c.KW - 1) * c.DilationW / c.StrideW);

    private static int PlaneSize(ConvLayer c) => PhaseSize(c).Hq * PhaseSize(c).Wq;

    /// <summary>Offset of kernel column j from kernel column 0: column (j * DW) / SW of the planes of column phase (j * DW) % SW.</summary>
    private static int TapOffset(ConvLayer c, int j) => j * c.DilationW % c.StrideW * PlaneSize(c) + j * c.DilationW / c.StrideW;

    /// <summary>Floats of the padded copy: C x SH x SW planes, plus a vector of slack.</summary>
    public int PaddedBufferSize(ConvLayer c) => c.C * c.StrideH * c.StrideW * PlaneSize(c) + V;

    /// <summary>
    /// Columns of one channel's wide output: OH rows computed over the plane width, all but the last row
    /// carrying Wq - OW columns of junk that the compaction skips (the last row stops at OW).
    /// </summary>
    public static int WideColumns(ConvLayer c) => (c.OH - 1) * PhaseSize(c).Wq + c.OW;

    /// <summary>Floats of the wide output ([M, WideColumns]).</summary>
    public int WideBufferSize(ConvLayer c) => c.M * WideColumns(c);

    private void PaddedConv(CodeWriter w, string method, ConvLayer c)
    {
        bool bias = c.Bias is not null;
        var (hq, wq) = PhaseSize(c);
        int inSize = c.C * c.H * c.W, outSize = c.M * c.OH * c.OW;
        bool strided = c.StrideH > 1 || c.StrideW > 1;
        w.Line(strided
            ? $"// Strided convolution as an implicit GEMM: the zero-padded input is split into {c.StrideH} x {c.StrideW} phase planes of [{hq} x {wq}]"
            : $"// Convolution as an implicit GEMM over a zero-padded input copy [{c.C} x {hq} x {wq}]:");
        w.Line($"// each (channel, kernel row, kernel column) is a shifted view{(strided ? " of one plane" : "")}, so no im2col; outputs are computed {wq} wide, then compacted to {c.OW}.");
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y, float[] w{(bias ? ", float[] b" : "")}, Span<float> padded, Span<float> wide)");
        w.Line($"const int C = {I(c.C)}, H = {I(c.H)}, W = {I(c.W)}, M = {I(c.M)}, OH = {I(c.OH)}, OW = {I(c.OW)}, Hq = {I(hq)}, Wq = {I(wq)}, PT = {I(c.PadTop)}, PL = {I(c.PadLeft)};");
        if (strided) w.Line($"const int SH = {I(c.StrideH)}, SW = {I(c.StrideW)};");
        w.Open($"for (int n = 0; n < {I(c.Batch)}; n++)");
        w.Line($"ReadOnlySpan<float> xn = x.Slice(n * {I(inSize)}, {I(inSize)});");
        w.Line($"Span<float> yn = y.Slice(n * {I(outSize)}, {I(outSize)});");
        w.Line("// The padding border is never written, so it stays zero from allocation.");
        if (!strided)
            w.Line("for (int c = 0; c < C; c++) for (int h = 0; h < H; h++) xn.Slice((c * H + h) * W, W).CopyTo(padded.Slice((c * Hq + h + PT) * Wq + PL, W));");
        else PhaseSplitCopy(w, c);
        w.Line($"{method}_Gemm(padded, wide, w{(bias ? ", b" : "")});");
        w.Line($"for (int m = 0; m < M; m++) for (int oh = 0; oh < OH; oh++) wide.Slice(m * {I(WideColumns(c))} + oh * Wq, OW).CopyTo(yn.Slice((m * OH + oh) * OW, OW));");
        w.Close();
        w.Close();
        w.Line();
        Gemm(w, method + "_Gemm", c.M, c.C * c.KH * c.KW, WideColumns(c), bias, c.Activation, c);
    }

    /// <summary>
    /// Scatters each input row into the phase planes that some tap reads (a 1x1 stride-2 conv needs one of four).
    /// Horizontal stride 2 runs on vectors: one shuffle puts the even columns in the lower half and the odd ones
    /// in the upper half, each stored to its plane; the columns left over go one by one.
    /// </summary>
    private void PhaseSplitCopy(CodeWriter w, ConvLayer c)
    {
        var (hq, wq) = PhaseSize(c);
        var rowPhases = Enumerable.Range(0, c.KH).Select(i => i * c.DilationH % c.StrideH).ToHashSet();
        var colPhases = Enumerable.Range(0, c.KW).Select(j => j * c.DilationW % c.StrideW).ToHashSet();
        w.Line("ref float xr = ref MemoryMarshal.GetReference(xn);");
        w.Line("ref float pr = ref MemoryMarshal.GetReference(padded);");
        w.Open("for (int c = 0; c < C; c++)");
        w.Open("for (int h = 0; h < H; h++)");
        w.Line("int r = h + PT;");
        w.Line("if (r / SH >= Hq) break; // rows past the last window are never read");
        if (rowPhases.Count < c.StrideH)
            w.Line($"if ({string.Join(" && ", rowPhases.Select(ph => $"r % SH != {I(ph)}"))}) continue; // no kernel row reads this phase");
        w.Line("ref float src = ref Unsafe.Add(ref xr, (c * H + h) * W);");
        w.Line("ref float dst = ref Unsafe.Add(ref pr, (c * SH + r % SH) * SW * (Hq * Wq) + r / SH * Wq);");
        int first = 0;
        if (c.StrideW == 2 && V >= 4)
        {
            // Vectors start where column iw + PL is even; each covers V columns, V/2 per plane.
            int start = c.PadLeft % 2, count = 0;
            while (start + (count + 1) * V <= c.W && (start + c.PadLeft) / 2 + (count + 1) * V / 2 <= wq) count++;
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
        ScalarColumns(first, c.W);
        w.Close();
        w.Close();

        void ScalarColumns(int from, int to)
        {
            w.Open($"for (int iw = {I(from)}; iw < {I(to)}; iw++)");
            w.Line("int q = iw + PL;");
            w.Line("if (q / SW >= Wq) break;");
            if (colPhases.Count < c.StrideW)
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
    private void Gemm(CodeWriter w, string method, int m, int k, int p, bool bias, Activation act, ConvLayer? padded)
    {
        w.Line(Hot);
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y, float[] w{(bias ? ", float[] b" : "")})");
        w.Line($"const int M = {I(m)}, K = {I(k)}, P = {I(p)};");
        if (padded is not null)
        {
            var (hq, wq) = PhaseSize(padded);
            w.Line($"const int C = {I(padded.C)}, KH = {I(padded.KH)}, KW = {I(padded.KW)}, Hq = {I(hq)}, Wq = {I(wq)}, SH = {I(padded.StrideH)}, SW = {I(padded.StrideW)}, DH = {I(padded.DilationH)};");
        }
        w.Line("ref float xr = ref MemoryMarshal.GetReference(x);");
        w.Line("ref float yr = ref MemoryMarshal.GetReference(y);");
        w.Line("ref float wr = ref MemoryMarshal.GetArrayDataReference(w);");
        if (bias) w.Line("ref float br = ref MemoryMarshal.GetArrayDataReference(b);");
        w.Line("int m = 0;");
        if (m >= GemmRows)
        {
            w.Open($"for (; m <= M - {GemmRows}; m += {GemmRows})");
            GemmRowBlock(w, GemmRows, p, bias, act, padded);
            w.Close();
        }
        if (m % GemmRows != 0)
        {
            w.Open($"for (; m < M; m += {m % GemmRows}) // the last {m % GemmRows} row(s), once");
            GemmRowBlock(w, m % GemmRows, p, bias, act, padded);
            w.Close();
        }
        w.Close();
    }

    /// <summary>Vector accumulators a GEMM block keeps in flight: FMA latency (4 cycles) times its issue rate (2 per cycle).</summary>
    private const int GemmAccumulators = 8;

    private void GemmRowBlock(CodeWriter w, int rows, int p, bool bias, Activation act, ConvLayer? padded)
    {
        var r = Enumerable.Range(0, rows).ToArray();
        foreach (var i in r)
            w.Line($"ref float w{i} = ref Unsafe.Add(ref wr, (m + {i}) * K); ref float y{i} = ref Unsafe.Add(ref yr, (m + {i}) * P);");
        foreach (var i in r)
            w.Line(bias ? $"float b{i} = Unsafe.Add(ref br, m + {i});" : $"const float b{i} = 0f;");
        if (p < V)
        {
            GemmScalarColumns(w, r, act, padded);
            return;
        }
        int cols = Math.Min((GemmAccumulators + rows - 1) / rows, p / V);
        int rest = p % (cols * V) / V;
        w.Line("int p = 0;");
        w.Open($"for (; p <= P - {cols * V}; p += {cols * V})");
        GemmTile(w, r, cols, act, padded);
        w.Close();
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
    }

    /// <summary>One rows x cols tile of vector accumulators at column p: the k loop, then bias, activation, store.</summary>
    private void GemmTile(CodeWriter w, int[] r, int cols, Activation act, ConvLayer? padded)
    {
        var c = Enumerable.Range(0, cols).ToArray();
        foreach (var i in r) w.Line(string.Join(" ", c.Select(j => $"{VT} a{i}{j} = {VT}.Zero;")));
        int taps = OpenK(w, padded);
        for (int t = 0; t < taps; t++)
        {
            int offset = padded is null ? 0 : TapOffset(padded, t);
            string dx = offset == 0 ? "" : $"{I(offset)} + ";
            string dk = t == 0 ? "k" : $"k + {I(t)}";
            foreach (var j in c) w.Line($"{VT} x{j}_{t} = {VS}.LoadUnsafe(ref xk, {dx}{I(j * V)});");
            foreach (var i in r)
            {
                w.Line($"{VT} w{i}_{t} = {VS}.Create(Unsafe.Add(ref w{i}, {dk}));");
                foreach (var j in c) w.Line($"a{i}{j} = {Fma($"w{i}_{t}", $"x{j}_{t}", $"a{i}{j}")};");
            }
        }
        CloseK(w, padded);
        foreach (var i in r)
            foreach (var j in c)
                w.Line($"({VAct(act, $"a{i}{j} + {VS}.Create(b{i})")}).StoreUnsafe(ref y{i}, (nuint)(p + {j * V}));");
    }

    /// <summary>Fewer columns than one vector: scalar sums.</summary>
    private static void GemmScalarColumns(CodeWriter w, int[] r, Activation act, ConvLayer? padded)
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
        foreach (var i in r) w.Line($"Unsafe.Add(ref y{i}, p) = {Act(act, $"s{i}")};");
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
        return padded.KW;
    }

    /// <summary>Closes what <see cref="OpenK"/> opened.</summary>
    private static void CloseK(CodeWriter w, ConvLayer? padded)
    {
        w.Close();
        if (padded is not null) w.Close();
    }

    /// <summary>Grouped and depthwise convolution, computed directly.</summary>
    private static void DirectConv(CodeWriter w, string method, ConvLayer c)
    {
        bool bias = c.Bias is not null;
        w.Line(Hot);
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y, float[] w{(bias ? ", float[] b" : "")})");
        w.Line($"const int Batch = {I(c.Batch)}, C = {I(c.C)}, H = {I(c.H)}, W = {I(c.W)}, M = {I(c.M)}, G = {I(c.Group)}, KH = {I(c.KH)}, KW = {I(c.KW)}, OH = {I(c.OH)}, OW = {I(c.OW)};");
        w.Line($"const int SH = {I(c.StrideH)}, SW = {I(c.StrideW)}, DH = {I(c.DilationH)}, DW = {I(c.DilationW)}, PT = {I(c.PadTop)}, PL = {I(c.PadLeft)};");
        w.Line("const int CG = C / G, MG = M / G;");
        w.Open("for (int n = 0; n < Batch; n++)");
        w.Open("for (int m = 0; m < M; m++)");
        w.Line("int g = m / MG;");
        w.Open("for (int oh = 0; oh < OH; oh++)");
        w.Open("for (int ow = 0; ow < OW; ow++)");
        w.Line(bias ? "float s = b[m];" : "float s = 0f;");
        w.Open("for (int cg = 0; cg < CG; cg++)");
        w.Line("int xc = (n * C + g * CG + cg) * H;");
        w.Line("int wc = (m * CG + cg) * KH;");
        w.Open("for (int i = 0; i < KH; i++)");
        w.Line("int ih = oh * SH - PT + i * DH;");
        w.Line("if ((uint)ih >= H) continue;");
        w.Open("for (int j = 0; j < KW; j++)");
        w.Line("int iw = ow * SW - PL + j * DW;");
        w.Line("if ((uint)iw < W) s += w[(wc + i) * KW + j] * x[(xc + ih) * W + iw];");
        w.Close();
        w.Close();
        w.Close();
        w.Line($"y[((n * M + m) * OH + oh) * OW + ow] = {Act(c.Activation, "s")};");
        w.Close();
        w.Close();
        w.Close();
        w.Close();
        w.Close();
    }

    // ---- Pools -----------------------------------------------------------------------------------------

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

    // ---- Elementwise -----------------------------------------------------------------------------------

    public void ScaleShift(CodeWriter w, string method, ScaleShiftLayer s)
    {
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y, float[] scale, float[] shift)");
        w.Line($"const int Batch = {I(s.Batch)}, C = {I(s.C)}, S = {I(s.Spatial)};");
        w.Open("for (int n = 0; n < Batch; n++)");
        w.Open("for (int c = 0; c < C; c++)");
        w.Line("float a = scale[c], b = shift[c];");
        w.Line("int o = (n * C + c) * S;");
        w.Line("for (int i = 0; i < S; i++) y[o + i] = x[o + i] * a + b;");
        w.Close();
        w.Close();
        w.Close();
    }

    public void Binary(CodeWriter w, string method, BinaryLayer b)
    {
        var shape = b.OutputShape;
        string op = b.Op switch { BinaryOp.Add => "+", BinaryOp.Sub => "-", _ => "*" };
        w.Open($"private static void {method}(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)");
        int size = Shape.Size(shape);
        bool sameA = Shape.Size(b.A.Shape) == size, sameB = Shape.Size(b.B.Shape) == size;
        if (sameA && sameB)
        {
            w.Line($"const int Size = {I(size)};");
            w.Line("int i = 0;");
            if (size >= V)
            {
                w.Line("ref float ar = ref MemoryMarshal.GetReference(a); ref float br = ref MemoryMarshal.GetReference(b); ref float yr = ref MemoryMarshal.GetReference(y);");
                w.Line($"for (; i <= Size - {V}; i += {V}) ({VS}.LoadUnsafe(ref ar, (nuint)i) {op} {VS}.LoadUnsafe(ref br, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);");
            }
            w.Line($"for (; i < Size; i++) y[i] = a[i] {op} b[i];");
        }
        else
        {
            // General broadcasting: nested loops over the output with per-operand strides (0 on broadcast axes).
            var sa = Shape.BroadcastStrides(b.A.Shape, shape);
            var sb = Shape.BroadcastStrides(b.B.Shape, shape);
            w.Line("int o = 0;");
            for (int d = 0; d < shape.Length; d++)
                w.Open($"for (int i{d} = 0; i{d} < {I(shape[d])}; i{d}++)");
            string Index(int[] strides) => shape.Length == 0 ? "0" :
                string.Join(" + ", Enumerable.Range(0, shape.Length).Where(d => strides[d] != 0).Select(d => $"i{d} * {I(strides[d])}").DefaultIfEmpty("0"));
            w.Line($"y[o++] = a[{Index(sa)}] {op} b[{Index(sb)}];");
            for (int d = 0; d < shape.Length; d++) w.Close();
        }
        w.Close();
    }

    public void Unary(CodeWriter w, string method, UnaryLayer u)
    {
        int size = Shape.Size(u.OutputShape);
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y)");
        w.Line($"const int Size = {I(size)};");
        w.Line("int i = 0;");
        if (u.Function == UnaryFunction.Relu && size >= V)
        {
            w.Line("ref float xr = ref MemoryMarshal.GetReference(x); ref float yr = ref MemoryMarshal.GetReference(y);");
            w.Line($"for (; i <= Size - {V}; i += {V}) {VS}.Max({VS}.LoadUnsafe(ref xr, (nuint)i), {VT}.Zero).StoreUnsafe(ref yr, (nuint)i);");
        }
        var f = u.Function switch
        {
            UnaryFunction.Relu => "MathF.Max(v, 0f)",
            UnaryFunction.LeakyRelu => $"v >= 0f ? v : {F(u.Alpha)} * v",
            UnaryFunction.Clip => $"MathF.Min(MathF.Max(v, {F(u.Min)}), {F(u.Max)})",
            UnaryFunction.Sigmoid => "1f / (1f + MathF.Exp(-v))",
            UnaryFunction.Tanh => "MathF.Tanh(v)",
            _ => throw new InvalidOperationException(u.Function.ToString()),
        };
        w.Line($"for (; i < Size; i++) {{ float v = x[i]; y[i] = {f}; }}");
        w.Close();
    }

    public void Concat(CodeWriter w, string method, ConcatLayer c)
    {
        var shape = c.OutputShape;
        int outer = Shape.Size(shape, 0, c.Axis), inner = Shape.Size(shape, c.Axis + 1, shape.Length);
        var parameters = string.Join(", ", c.Operands.Select((_, i) => $"ReadOnlySpan<float> x{i}"));
        w.Open($"private static void {method}({parameters}, Span<float> y)");
        w.Line($"const int Outer = {I(outer)}, Row = {I(shape[c.Axis] * inner)};");
        w.Open("for (int o = 0; o < Outer; o++)");
        int offset = 0;
        for (int i = 0; i < c.Operands.Length; i++)
        {
            int chunk = c.Operands[i].Shape[c.Axis] * inner;
            w.Line($"x{i}.Slice(o * {I(chunk)}, {I(chunk)}).CopyTo(y.Slice(o * Row + {I(offset)}, {I(chunk)}));");
            offset += chunk;
        }
        w.Close();
        w.Close();
    }

    public void Softmax(CodeWriter w, string method, SoftmaxLayer s)
    {
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y)");
        w.Line($"const int Outer = {I(s.Outer)}, D = {I(s.Axis)}, Inner = {I(s.Inner)};");
        w.Open("for (int o = 0; o < Outer; o++)");
        w.Open("for (int r = 0; r < Inner; r++)");
        w.Line("int start = o * D * Inner + r;");
        w.Line("float max = float.NegativeInfinity;");
        w.Line("for (int d = 0; d < D; d++) max = MathF.Max(max, x[start + d * Inner]);");
        w.Line("float sum = 0f;");
        if (s.Log)
        {
            w.Line("for (int d = 0; d < D; d++) sum += MathF.Exp(x[start + d * Inner] - max);");
            w.Line("float log = MathF.Log(sum);");
            w.Line("for (int d = 0; d < D; d++) y[start + d * Inner] = x[start + d * Inner] - max - log;");
        }
        else
        {
            w.Line("for (int d = 0; d < D; d++) { float e = MathF.Exp(x[start + d * Inner] - max); y[start + d * Inner] = e; sum += e; }");
            w.Line("for (int d = 0; d < D; d++) y[start + d * Inner] /= sum;");
        }
        w.Close();
        w.Close();
        w.Close();
    }

    public void Lrn(CodeWriter w, string method, LrnLayer l)
    {
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y)");
        w.Line($"const int Batch = {I(l.Batch)}, C = {I(l.C)}, S = {I(l.Spatial)};");
        w.Line($"const int Before = {I((l.Size - 1) / 2)}, After = {I((l.Size - 1) - (l.Size - 1) / 2)};");
        w.Line($"const float AlphaOverSize = {F(l.Alpha / l.Size)}, Beta = {F(l.Beta)}, Bias = {F(l.Bias)};");
        w.Open("for (int n = 0; n < Batch; n++)");
        w.Open("for (int c = 0; c < C; c++)");
        w.Open("for (int i = 0; i < S; i++)");
        w.Line("float sum = 0f;");
        w.Line("for (int k = Math.Max(0, c - Before); k <= Math.Min(C - 1, c + After); k++) { float v = x[(n * C + k) * S + i]; sum += v * v; }");
        w.Line("int at = (n * C + c) * S + i;");
        w.Line("y[at] = x[at] / MathF.Pow(Bias + AlphaOverSize * sum, Beta);");
        w.Close();
        w.Close();
        w.Close();
        w.Close();
    }
}
