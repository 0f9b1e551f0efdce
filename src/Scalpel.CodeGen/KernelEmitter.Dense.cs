using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

internal sealed partial class KernelEmitter
{
    public void Dense(CodeWriter w, string method, DenseLayer d)
    {
        var bias = d.Bias is not null || d.BiasFull is not null;
        bool batched = !d.TransposeInput && d.BiasFull is null;
        w.Line(Hot);
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y, float[] w{(bias ? ", float[] b" : "")}{(d.TransposeInput ? ", Span<float> t" : "")}{(batched ? ", int count" : "")})");
        w.Line($"const int K = {I(d.K)}, N = {I(d.N)};");
        w.Line(batched ? $"int rows = count * {I(d.InputRows)};" : $"const int rows = {I(d.InputRows)};");
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
        if (batched && (long)d.K * d.N * sizeof(float) > StreamedWeightBytes) StreamedDense(w, d);
        else if (batched)
        {
            w.Line($"// {DenseSamples} input rows at a time: each weight vector loaded feeds {DenseSamples} FMAs.");
            w.Open($"for (; m <= rows - {DenseSamples}; m += {DenseSamples})");
            for (int s = 0; s < DenseSamples; s++)
                w.Line($"ref float x{s}m = ref Unsafe.Add(ref xr, {Scaled("m", s, "K")}); ref float y{s}m = ref Unsafe.Add(ref yr, {Scaled("m", s, "N")});");
            OutputRows(w, d, TileRows, rows => DenseTile(w, d, DenseSamples, rows));
            w.Close();
        }
        w.Open("for (; m < rows; m++)");
        w.Line("ref float xm = ref Unsafe.Add(ref xr, m * K);");
        w.Line("ref float ym = ref Unsafe.Add(ref yr, m * N);");
        OutputRows(w, d, DenseRows, rows => DenseRowBlock(w, d, rows));
        w.Close();
        w.Close();
    }

    /// <summary>The loops over output rows n: blocks of <paramref name="block"/>, then one at a time.</summary>
    private static void OutputRows(CodeWriter w, DenseLayer d, int block, Action<int> body)
    {
        w.Line("int n = 0;");
        if (d.N >= block)
        {
            w.Open($"for (; n <= N - {block}; n += {block})");
            body(block);
            w.Close();
        }
        if (d.N % block != 0)
        {
            w.Open("for (; n < N; n++)");
            body(1);
            w.Close();
        }
    }

    /// <summary>Weights larger than this (about an L2) are read from memory once per chunk, not once per sample group.</summary>
    private const int StreamedWeightBytes = 1 << 20;

    /// <summary>
    /// The sample groups of a dense layer whose weights do not fit in cache (AlexNet's and VGG's classifiers): tiles
    /// of output neurons outside, every group of DenseSamples inputs of the chunk inside, so each weight tile comes
    /// from memory once and serves the whole chunk from cache. The samples after the last group (all of them at
    /// batch 1) take the one-sample loop that follows, as for any dense layer.
    /// </summary>
    private void StreamedDense(CodeWriter w, DenseLayer d)
    {
        w.Line($"// Weights of {(long)d.K * d.N * sizeof(float) / (1 << 20)} MB, past the cache: each tile of output rows is read once for all the chunk's sample groups.");
        w.OpenBlock();
        OutputRows(w, d, TileRows, rows =>
        {
            w.Line("m = 0;");
            w.Open($"for (; m <= rows - {DenseSamples}; m += {DenseSamples})");
            for (int s = 0; s < DenseSamples; s++)
                w.Line($"ref float x{s}m = ref Unsafe.Add(ref xr, {Scaled("m", s, "K")}); ref float y{s}m = ref Unsafe.Add(ref yr, {Scaled("m", s, "N")});");
            DenseTile(w, d, DenseSamples, rows);
            w.Close();
        });
        w.Close();
    }

    /// <summary>
    /// Sparse dense-layer kernels. CSR: one index per weight, scalar. Grouped CSR: per kept group one vector
    /// load of weights, one of contiguous inputs and one FMA; a dense tail covers the last K % G columns.
    /// Both run 4 samples per pass so each index and weight load serves 4 inputs.
    /// </summary>
    public void SparseDense(CodeWriter w, string method, DenseLayer d, SparseMatrix m)
    {
        if (m.AlongOutputs)
        {
            OutputGroupedDense(w, method, d, m);
            return;
        }
        bool grouped = d.Format == WeightFormat.GroupedCsr;
        if (grouped && m.GroupWidth % V != 0)
            throw new InvalidOperationException($"group width {m.GroupWidth} is not a multiple of the target's {V} lanes");
        var (col, row) = IndexTypes(m);
        bool bias = d.Bias is not null;
        w.Line(Hot);
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y, float[] values, {col}[] columns, {row}[] rowStarts{(m.TailWidth > 0 ? ", float[] tail" : "")}{(bias ? ", float[] b" : "")}, int count)");
        w.Line($"const int K = {I(d.K)}, N = {I(d.N)}{(grouped ? $", G = {I(m.GroupWidth)}" : "")}{(m.TailWidth > 0 ? $", Full = {I(m.FullColumns)}, T = {I(m.TailWidth)}" : "")};");
        w.Line($"// {m.Entries} {(grouped ? "groups" : "nonzeros")} kept of {(grouped ? (long)d.N * (m.FullColumns / m.GroupWidth) : (long)d.N * d.K)}.");
        w.Line($"int rows = count * {I(d.InputRows)};");
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
                w.Line($"ref float x{s}m = ref Unsafe.Add(ref xr, {Scaled("m", s, "K")}); ref float y{s}m = ref Unsafe.Add(ref yr, {Scaled("m", s, "N")});");
            w.Open("for (int n = 0; n < N; n++)");
            w.Line("int start = int.CreateTruncating(rowStarts[n]), end = int.CreateTruncating(rowStarts[n + 1]);");
            if (grouped && samples == 1 && m.GroupWidth == V)
            {
                // One sample: four accumulators over consecutive groups, so the FMAs do not wait on each other.
                w.Line($"{VT} a0 = {VT}.Zero, a1 = {VT}.Zero, a2 = {VT}.Zero, a3 = {VT}.Zero;");
                w.Line("int j = start;");
                w.Open("for (; j <= end - 4; j += 4)");
                for (int u = 0; u < 4; u++)
                    w.Line($"a{u} = {Fma($"{VS}.LoadUnsafe(ref vr, (nuint)({Scaled("j", u, "G")}))", $"{VS}.LoadUnsafe(ref x0m, (nuint)Unsafe.Add(ref cr, {Sum("j", u)}))", $"a{u}")};");
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
                    foreach (var s in ss) w.Line($"a{s} = {Fma($"w{q}", $"{VS}.LoadUnsafe(ref x{s}m, {Sum("c", q * V)})", $"a{s}")};");
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

    /// <summary>
    /// Output-grouped kernel: per block of G output rows, each kept group broadcasts one input and adds its G
    /// weights times it into vector accumulators seeded with the bias, so no horizontal sum and no per-row work
    /// remain; the cost follows the kept groups. One sample: independent accumulators over consecutive groups so
    /// the FMAs do not wait on each other; 4 samples: each weight vector loaded feeds 4 FMAs.
    /// </summary>
    private void OutputGroupedDense(CodeWriter w, string method, DenseLayer d, SparseMatrix m)
    {
        if (m.GroupWidth % V != 0)
            throw new InvalidOperationException($"group width {m.GroupWidth} is not a multiple of the target's {V} lanes");
        var (col, row) = IndexTypes(m);
        bool bias = d.Bias is not null;
        int g = m.GroupWidth, full = d.N / g, partial = d.N % g;
        w.Line(Hot);
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y, float[] values, {col}[] columns, {row}[] rowStarts{(bias ? ", float[] b" : "")}, int count)");
        w.Line($"const int K = {I(d.K)}, N = {I(d.N)}, G = {I(g)};");
        w.Line($"// {m.Entries} groups of {g} output rows x 1 input kept of {(long)m.PointerRows * d.K}.");
        w.Line($"int rows = count * {I(d.InputRows)};");
        w.Line("ref float xr = ref MemoryMarshal.GetReference(x);");
        w.Line("ref float yr = ref MemoryMarshal.GetReference(y);");
        w.Line("ref float vr = ref MemoryMarshal.GetArrayDataReference(values);");
        w.Line($"ref {col} cr = ref MemoryMarshal.GetArrayDataReference(columns);");
        if (bias) w.Line("ref float br = ref MemoryMarshal.GetArrayDataReference(b);");
        w.Line("int m = 0;");
        foreach (var samples in new[] { DenseSamples, 1 })
        {
            w.Open(samples > 1 ? $"for (; m <= rows - {samples}; m += {samples})" : "for (; m < rows; m++)");
            for (int s = 0; s < samples; s++)
                w.Line($"ref float x{s}m = ref Unsafe.Add(ref xr, {Scaled("m", s, "K")}); ref float y{s}m = ref Unsafe.Add(ref yr, {Scaled("m", s, "N")});");
            if (full > 0)
            {
                w.Open($"for (int blk = 0; blk < {I(full)}; blk++)");
                OutputGroupedBlock(w, d, g, samples, g);
                w.Close();
            }
            if (partial > 0)
            {
                w.Open($"// the last {partial} rows: a partial block, stored lane by lane");
                w.Line($"const int blk = {I(full)};");
                OutputGroupedBlock(w, d, g, samples, partial);
                w.Close();
            }
            w.Close();
        }
        w.Close();
    }

    private void OutputGroupedBlock(CodeWriter w, DenseLayer d, int g, int samples, int height)
    {
        int q = g / V;
        var vs = Enumerable.Range(0, q).ToArray();
        var ss = Enumerable.Range(0, samples).ToArray();
        // Independent accumulator sets per sample: 4 samples give 4 already; one sample unrolls groups instead.
        int unroll = samples > 1 ? 1 : Math.Max(1, 4 / q);
        int sets = samples > 1 ? samples : unroll;
        string Seed(int set, int v) => set == 0 || samples > 1 ? (d.Bias is not null ? $"{VS}.LoadUnsafe(ref br, (nuint)({Sum("blk * G", v * V)}))" : $"{VT}.Zero") : $"{VT}.Zero";
        w.Line("int start = int.CreateTruncating(rowStarts[blk]), end = int.CreateTruncating(rowStarts[blk + 1]);");
        for (int a = 0; a < sets; a++) w.Line(string.Join(" ", vs.Select(v => $"{VT} a{a}_{v} = {Seed(a, v)};")));
        if (samples > 1)
        {
            w.Open("for (int j = start; j < end; j++)");
            w.Line("nint c = (nint)Unsafe.Add(ref cr, j);");
            w.Line("ref float gw = ref Unsafe.Add(ref vr, j * G);");
            foreach (var s in ss) w.Line($"{VT} xb{s} = {VS}.Create(Unsafe.Add(ref x{s}m, c));");
            foreach (var v in vs)
            {
                w.Line($"{VT} w{v} = {VS}.LoadUnsafe(ref gw, {v * V});");
                foreach (var s in ss) w.Line($"a{s}_{v} = {Fma($"w{v}", $"xb{s}", $"a{s}_{v}")};");
            }
            w.Close();
        }
        else
        {
            void Group(string j, int a)
            {
                w.Line($"{VT} xb{a} = {VS}.Create(Unsafe.Add(ref x0m, (nint)Unsafe.Add(ref cr, {j})));");
                foreach (var v in vs) w.Line($"a{a}_{v} = {Fma($"{VS}.LoadUnsafe(ref vr, (nuint)({Sum($"({j}) * G", v * V)}))", $"xb{a}", $"a{a}_{v}")};");
            }
            w.Line("int j = start;");
            if (unroll > 1)
            {
                w.Open($"for (; j <= end - {unroll}; j += {unroll})");
                for (int u = 0; u < unroll; u++) Group(u == 0 ? "j" : $"j + {u}", u);
                w.Close();
            }
            w.Open("for (; j < end; j++)");
            Group("j", 0);
            w.Close();
            foreach (var v in vs)
                w.Line($"a0_{v} = {string.Join(" + ", Enumerable.Range(0, unroll).Select(u => $"a{u}_{v}"))};");
        }
        foreach (var s in samples > 1 ? ss : [0])
            foreach (var v in vs)
            {
                int lanes = Math.Clamp(height - v * V, 0, V);
                if (lanes == 0) continue;
                var value = VAct(d.Activation, $"a{s}_{v}");
                if (lanes == V) w.Line($"({value}).StoreUnsafe(ref y{s}m, (nuint)({Sum("blk * G", v * V)}));");
                else
                {
                    w.Line($"{VT} r{s}_{v} = {value};");
                    w.Line($"for (int i = 0; i < {lanes}; i++) Unsafe.Add(ref y{s}m, {Sum("blk * G", v * V)} + i) = r{s}_{v}.GetElement(i);");
                }
            }
    }

    /// <summary>The conv's weights as a dense layer over patch rows: N = output channels, K = C * KH * KW.</summary>
    public static DenseLayer AsDense(ConvLayer c) => new(c.Node, c.Inputs[0], c.Output, [c.Window.OH * c.Window.OW, c.M])
    {
        InputRows = 1, K = c.Columns, N = c.M, Weight = c.Weight, Bias = c.Bias, Activation = c.Activation, Format = c.Format, GroupWidth = c.GroupWidth,
    };

    /// <summary>
    /// Sparse convolution (low-parallelism targets): im2col into patch rows, the sparse dense-layer kernel over
    /// all output positions (one vector load of weights and one of contiguous patch values per group), then a
    /// transpose back to channel-major.
    /// </summary>
    public void SparseConv(CodeWriter w, string method, ConvLayer c, DenseLayer asDense, SparseMatrix m)
    {
        var (col, row) = IndexTypes(m);
        bool bias = c.Bias is not null, tail = m.TailWidth > 0;
        int inSize = c.C * c.Window.H * c.Window.W, positions = c.Window.OH * c.Window.OW, outSize = c.M * positions;
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y, float[] values, {col}[] columns, {row}[] rowStarts{(tail ? ", float[] tail" : "")}{(bias ? ", float[] b" : "")}, Span<float> patches, Span<float> transposed)");
        OpenSamples(w, c.Batch);
        w.Line($"{method}_Patches({Part("x", inSize, c.Batch)}, patches);");
        w.Line($"{method}_Rows(patches, transposed, values, columns, rowStarts{(tail ? ", tail" : "")}{(bias ? ", b" : "")}, {I(positions)});");
        w.Line($"Span<float> yn = {Part("y", outSize, c.Batch)};");
        w.Line($"for (int p = 0; p < {I(positions)}; p++) for (int m = 0; m < {I(c.M)}; m++) yn[m * {I(positions)} + p] = transposed[p * {I(c.M)} + m];");
        w.Close();
        w.Close();
        w.Line();
        w.Open($"private static void {method}_Patches(ReadOnlySpan<float> x, Span<float> patches)");
        w.Line($"const int C = {I(c.C)}, H = {I(c.Window.H)}, W = {I(c.Window.W)}, KH = {I(c.Window.KH)}, KW = {I(c.Window.KW)}, OH = {I(c.Window.OH)}, OW = {I(c.Window.OW)}, K = C * KH * KW;");
        w.Line($"const int SH = {I(c.Window.StrideH)}, SW = {I(c.Window.StrideW)}, DH = {I(c.Window.DilationH)}, DW = {I(c.Window.DilationW)}, PT = {I(c.Window.PadTop)}, PL = {I(c.Window.PadLeft)};");
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

    /// <summary>
    /// One sample's block of output rows, dot products along K. Weights past the cache stream from memory; the rows
    /// about 128 KB ahead are prefetched as these are read, which keeps more of memory's latency in flight than the
    /// block's own rows do (a 1280 -> 1000 layer read cold: 360-367 -> 250-257 µs).
    /// </summary>
    private void DenseRowBlock(CodeWriter w, DenseLayer d, int rows)
    {
        var r = Enumerable.Range(0, rows).ToArray();
        foreach (var i in r)
            w.Line(i == 0 ? "ref float w0 = ref Unsafe.Add(ref wr, n * K);" : $"ref float w{i} = ref Unsafe.Add(ref w{i - 1}, K);");
        int full = d.K / V * V;
        // Prefetching lines already in cache costs load slots (a 1280 -> 1000 layer read hot: 66 -> 78 µs), so only
        // weights past L2, which come from L3 or memory in any case.
        bool prefetch = rows > 1 && d.N >= rows && (long)d.K * d.N * sizeof(float) > StreamedWeightBytes;
        if (prefetch)
        {
            int ahead = Math.Max(rows, PrefetchAheadBytes / (d.K * sizeof(float)) / rows * rows);
            w.Line($"ref float wa = ref Unsafe.Add(ref wr, Math.Min(n + {I(ahead)}, N - {I(rows)}) * K);");
        }
        if (full > 0)
        {
            w.Line(string.Join(" ", r.Select(i => $"{VT} a{i} = {VT}.Zero;")));
            w.Open($"for (int k = 0; k < {I(full)}; k += {V})");
            if (prefetch) foreach (var i in r) w.Line(Prefetch($"Unsafe.Add(ref wa, {(i == 0 ? "k" : $"k + {I(i)} * K")})"));
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

    /// <summary>The C# types of a sparse matrix's column indices and row starts (the narrowest that hold them).</summary>
    private static (string Columns, string RowStarts) IndexTypes(SparseMatrix m) =>
        (m.IndexBytes switch { 1 => "byte", 2 => "ushort", _ => "int" }, m.RowStartBytes == 2 ? "ushort" : "int");
}
