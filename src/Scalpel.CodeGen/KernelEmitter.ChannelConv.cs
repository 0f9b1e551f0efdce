using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

/// <summary>
/// Convolution vectorised across output channels: each accumulator holds V output channels of one output pixel,
/// each input value is broadcast once per tap and multiplied with a vector of V packed weights. Its speed does
/// not depend on the map width (no lanes wasted on short rows, no junk columns), which the pixel-vectorised
/// GEMM cannot offer on small maps, wide kernels or strides.
/// </summary>
internal sealed partial class KernelEmitter
{
    /// <summary>
    /// A cost model in vector FMAs: the pixel GEMM computes every output channel over its wide rows rounded up to
    /// whole vectors; the channel kernel computes whole vectors of channels over the exact pixels, plus a scalar
    /// transposing store (about half an FMA slot per output). Channels must win by 10%, and each output needs
    /// at least 8 vectors' worth of products, or the store and broadcasts dominate (a first conv's 25 taps).
    /// Over the phase planes of a strided conv the pixel GEMM runs about 10% slower per FMA than the count says
    /// (measured on 13 stride-2 shapes at 512 bits: the channel kernel 1-23% ahead of the count's ratio), so there
    /// channels need only be about as cheap. Strides of 3 and more, not measured, take the same rule.
    /// </summary>
    public bool UsesChannelVectors(ConvLayer c)
    {
        if (c.Group != 1 || c.Format != WeightFormat.Dense) return false;
        if (KernelFor(c) != ConvKernel.Auto) return KernelFor(c) == ConvKernel.Channels;
        var (pixel, channel, k) = ConvCosts(c);
        double strided = UsesPaddedInput(c) && (c.Window.StrideH > 1 || c.Window.StrideW > 1) ? 1.1 : 1.0;
        return k >= 8 * V && channel < 0.9 * strided * pixel;
    }

    /// <summary>The cost model's vector FMAs for the pixel GEMM and the channel kernel, and the products per output.</summary>
    private (double Pixel, double Channel, long K) ConvCosts(ConvLayer c)
    {
        long k = (long)c.C * c.Window.KH * c.Window.KW, pixels = (long)c.Window.OH * c.Window.OW;
        return ((double)c.M * PixelColumnsComputed(c) / V * k, (double)ChannelVectors(c) * pixels * k + 0.5 * c.M * pixels, k);
    }
    /// <summary>Output columns the pixel GEMM computes per channel: rows stored straight (whole vectors, or a half-width last one), or the wide rows rounded up to whole vectors.</summary>
    private int PixelColumnsComputed(ConvLayer c)
    {
        if (UsesPaddedInput(c) && StoresRows(c)) return c.Window.OH * RowColumns(c);
        int p = UsesPaddedInput(c) ? WideColumns(c) : c.Window.OH * c.Window.OW;
        return Math.Max(V, (p + V - 1) / V * V);
    }

    /// <summary>Output channel vectors and output pixels (of one row) a tile keeps in accumulators.</summary>
    private (int Channels, int Pixels) ChannelTile(ConvLayer c) => ChannelRegisterTile(c, c.Window.OW);

    /// <summary>
    /// Output channel vectors (2, or 1 when there is one) and columns (pixels of a row, Winograd tiles) a tile of the
    /// kernels across channels keeps in accumulators: as many columns as the registers allow, spread evenly over
    /// <paramref name="count"/> so that no tile is left with too few to hide FMA latency.
    /// </summary>
    private (int Channels, int Columns) ChannelRegisterTile(ConvLayer c, int count)
    {
        int registers = VectorRegisters;
        int channels = Math.Min(ChannelVectors(c), 2);
        // Leave room for the weight vectors and one broadcast.
        int most = Math.Max(1, Math.Min((registers - channels - 2) / channels, registers >= 32 ? 12 : 6));
        int tiles = (count + most - 1) / most;
        return (channels, (count + tiles - 1) / tiles);
    }

    /// <summary>
    /// Vector registers the kernels plan for: 32 on a target with 512-bit vectors (AVX-512 has 32 at every width),
    /// else 16 (AVX2; NEON's 32 are not counted, as nothing was measured there).
    /// </summary>
    private int VectorRegisters => target.SimdBits >= 512 ? 32 : 16;

    /// <summary>Vectors of V output channels (the last one partly zero).</summary>
    private int ChannelVectors(ConvLayer c) => (c.M + V - 1) / V;

    /// <summary>Rows and columns of the input with its padding: the whole input after the leading padding, and far enough for the last window.</summary>
    private static (int Hp, int Wp) PaddedSize(ConvLayer c) =>
        (Math.Max(c.Window.H + c.Window.PadTop, (c.Window.OH - 1) * c.Window.StrideH + (c.Window.KH - 1) * c.Window.DilationH + 1),
         Math.Max(c.Window.W + c.Window.PadLeft, (c.Window.OW - 1) * c.Window.StrideW + (c.Window.KW - 1) * c.Window.DilationW + 1));

    /// <summary>Whether some windows pass the top or bottom border: each output row then runs only its kernel rows inside the map.</summary>
    private static bool ChannelRowEdges(ConvLayer c) => c.Window.PadTop > 0 || PaddedSize(c).Hp > c.Window.H;

    /// <summary>Input column of pixel <paramref name="ow"/>'s tap <paramref name="j"/>; outside [0, W) the tap reads padding.</summary>
    private static int ChannelColumn(ConvLayer c, int ow, int j) => ow * c.Window.StrideW + j * c.Window.DilationW - c.Window.PadLeft;

    /// <summary>Whether a tile of <paramref name="pixels"/> pixels from <paramref name="ow"/> has a tap in the padding columns.</summary>
    private static bool ChannelColumnEdge(ConvLayer c, int ow, int pixels) =>
        Enumerable.Range(ow, pixels).Any(q => Enumerable.Range(0, c.Window.KW).Any(j => ChannelColumn(c, q, j) is var col && (col < 0 || col >= c.Window.W)));

    /// <summary>Weights packed [M/V blocks][C x KH x KW][V], the last block zero-filled: one aligned vector load per tap.</summary>
    public float[] ChannelPackedWeights(ConvLayer c)
    {
        int k = c.C * c.Window.KH * c.Window.KW;
        var packed = new float[ChannelVectors(c) * k * V];
        for (int m = 0; m < c.M; m++)
            for (int t = 0; t < k; t++)
                packed[(m / V * k + t) * V + m % V] = c.Weight[m * k + t];
        return packed;
    }

    /// <summary>The bias padded to whole channel vectors.</summary>
    public float[] ChannelPackedBias(ConvLayer c)
    {
        var packed = new float[ChannelVectors(c) * V];
        c.Bias!.CopyTo(packed, 0);
        return packed;
    }

    /// <summary>Scratch of the channel kernel: the pixel-major output ([pixels][M rounded up to V]).</summary>
    public int ChannelBufferSize(ConvLayer c) => c.Window.OH * c.Window.OW * ChannelVectors(c) * V;

    private void ChannelConv(CodeWriter w, string method, ConvLayer c, Epilogue act)
    {
        bool bias = c.Bias is not null;
        var (tileChannels, tilePixels) = ChannelTile(c);
        int blocks = ChannelVectors(c), mp = blocks * V, k = c.C * c.Window.KH * c.Window.KW, pixels = c.Window.OH * c.Window.OW;
        int inSize = c.C * c.Window.H * c.Window.W, outSize = c.M * pixels;
        w.Line($"// Convolution vectorised across output channels: tiles of {tileChannels} x {V} channels x {tilePixels} pixels in accumulators,");
        w.Line($"// one broadcast input value per pixel and tap; weights packed [{blocks}][{k}][{V}]; output transposed from pixel-major once.");
        w.Line("// The input is read where it is: taps in the padding are left out (kernel rows per output row, columns per edge tile).");
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y{(act.Residual ? ", ReadOnlySpan<float> residual" : "")}, float[] w{(bias ? ", float[] b" : "")}, Span<float> pixelMajor)");
        w.Line($"const int M = {I(c.M)}, MP = {I(mp)}, P = {I(pixels)};");
        OpenSamples(w, c.Batch);
        w.Line($"ReadOnlySpan<float> xn = {Part("x", inSize, c.Batch)};");
        w.Line($"Span<float> yn = {Part("y", outSize, c.Batch)};");
        w.Line($"{method}_Tiles(xn, pixelMajor, w{(bias ? ", b" : "")});");
        PixelMajorToPlanes(w, c, act, outSize);
        w.Close();
        w.Close();
        w.Line();

        w.Line(Hot);
        w.Open($"private static void {method}_Tiles(ReadOnlySpan<float> x, Span<float> y, ReadOnlySpan<float> w{(bias ? ", ReadOnlySpan<float> b" : "")})");
        w.Line($"const int MP = {I(mp)}, OH = {I(c.Window.OH)}, OW = {I(c.Window.OW)}, H = {I(c.Window.H)}, W = {I(c.Window.W)}, PT = {I(c.Window.PadTop)}, PL = {I(c.Window.PadLeft)}, SH = {I(c.Window.StrideH)}, SW = {I(c.Window.StrideW)}, DH = {I(c.Window.DilationH)}, KH = {I(c.Window.KH)}, C = {I(c.C)};");
        w.Line("ref float xr = ref MemoryMarshal.GetReference(x);");
        w.Line("ref float yr = ref MemoryMarshal.GetReference(y);");
        w.Line("ref float wr = ref MemoryMarshal.GetReference(w);");
        if (bias) w.Line("ref float br = ref MemoryMarshal.GetReference(b);");
        int inputBlock = ChannelInputBlock(c, tileChannels);
        bool blocked = inputBlock < c.C;
        if (blocked)
        {
            w.Line($"// input channels in blocks of {I(inputBlock)}, so that the weights a block of tiles reads stay in L2; partial sums wait in y");
            w.Open($"for (int c0 = 0; c0 < C; c0 += {I(inputBlock)})");
            w.Line($"int c1 = Math.Min(C, c0 + {I(inputBlock)});");
            w.Line("bool first = c0 == 0, last = c1 == C;");
        }
        w.Line("int mb = 0;");
        int full = blocks / tileChannels * tileChannels;
        if (full > 0) ChannelBlocks(w, c, $"for (; mb < {I(full)}; mb += {tileChannels})", tileChannels, tilePixels, bias, act, blocked);
        if (full < blocks) ChannelBlocks(w, c, "// the last channel vector", 1, tilePixels, bias, act, blocked);
        if (blocked) w.Close();
        w.Close();
    }

    /// <summary>Bytes of packed weights a block of input channels may hold: about a quarter of a 1-2 MB L2.</summary>
    private const int ChannelWeightBytes = 256 * 1024;

    /// <summary>Input channels per block: all of them when the tile's weights fit <see cref="ChannelWeightBytes"/>.</summary>
    private int ChannelInputBlock(ConvLayer c, int tileChannels)
    {
        int perChannel = tileChannels * c.Window.KH * c.Window.KW * V * sizeof(float);
        return Math.Clamp(ChannelWeightBytes / perChannel, 1, c.C);
    }

    private void ChannelBlocks(CodeWriter w, ConvLayer c, string loop, int channels, int tilePixels, bool bias, Epilogue act, bool blocked)
    {
        int k = c.C * c.Window.KH * c.Window.KW, blocks = ChannelVectors(c);
        // The next block's weights come from memory (other layers ran since they were last read) while this block
        // computes from cache: a line of them is prefetched per tap row of each tile, so that the first tiles ask for
        // all of them. The last block asks for its own (a prefetch stays inside the array); one block alone has none to ask for.
        int lastLine = LastLine((long)channels * k * V);
        bool prefetch = !blocked && channels == 2 && blocks > channels && lastLine >= 0 && (long)blocks * k * V * sizeof(float) >= PrefetchWeightBytes;
        (int, int)? next = prefetch ? (tilePixels, lastLine) : null;
        w.Open(loop);
        for (int q = 0; q < channels; q++)
            w.Line($"ref float w{q} = ref Unsafe.Add(ref wr, {Scaled("mb", q, I(k * V))});");
        if (prefetch) w.Line($"ref float wn = ref Unsafe.Add(ref wr, Math.Min(mb + {channels}, {I(blocks - channels)}) * {I(k * V)});");
        w.Open("for (int oh = 0; oh < OH; oh++)");
        if (ChannelRowEdges(c))
        {
            w.Line("// the kernel rows whose input row is inside the map");
            w.Line("int i0 = Math.Max(0, (PT - oh * SH + DH - 1) / DH), below = H - 1 + PT - oh * SH, i1 = below < 0 ? 0 : Math.Min(KH, below / DH + 1);");
        }
        // Tiles from the row's start: those with a tap in the left or right padding one by one, with those taps left
        // out; the ones between in a loop.
        var starts = Enumerable.Range(0, (c.Window.OW + tilePixels - 1) / tilePixels).Select(t => t * tilePixels).ToList();
        int Width(int start) => Math.Min(tilePixels, c.Window.OW - start);
        bool Inner(int start) => Width(start) == tilePixels && !ChannelColumnEdge(c, start, tilePixels);
        int first = starts.FindIndex(Inner), last = starts.FindLastIndex(Inner);
        // The middle run is every tile between the first and last inner ones (none of them touches an edge).
        for (int t = 0; t < starts.Count; t++)
        {
            if (t == first)
            {
                w.Open($"for (int ow = {I(starts[first])}; ow <= {I(starts[last])}; ow += {tilePixels})");
                ChannelTileBody(w, c, channels, tilePixels, bias, act, blocked, next);
                w.Close();
                t = last;
                continue;
            }
            bool edge = ChannelColumnEdge(c, starts[t], Width(starts[t]));
            w.Open($"// pixels {starts[t]} to {starts[t] + Width(starts[t]) - 1}{(edge ? ", without their taps in the padding columns" : "")}");
            w.Line($"const int ow = {I(starts[t])};");
            ChannelTileBody(w, c, channels, Width(starts[t]), bias, act, blocked, next, edge ? starts[t] : null);
            w.Close();
        }
        w.Close();
        w.Close();
    }

    /// <summary>
    /// A channels x pixels tile at pixel p: the tap loop, then bias, activation and a pixel-major store. With
    /// input channel blocks, the accumulators start from the partial sums of the blocks before, and only the
    /// last block applies the epilogue. With <paramref name="prefetch"/> (tiles of Group pixels), tile n of the block
    /// prefetches lines n x C x KH onwards of the next block's weights, one per tap row. A tile at a row's edge
    /// (<paramref name="edgeAt"/>: its first pixel, known when the code is generated) leaves out its taps in the
    /// padding columns.
    /// </summary>
    private void ChannelTileBody(CodeWriter w, ConvLayer c, int channels, int pixels, bool bias, Epilogue act, bool blocked, (int Group, int LastLine)? prefetch = null, int? edgeAt = null)
    {
        var qs = Enumerable.Range(0, channels).ToArray();
        var rs = Enumerable.Range(0, pixels).ToArray();
        string Slot(int q, int r) => $"(nuint)({Scaled("p", r, "MP")} + {Scaled("mb", q, I(V))})";
        // A tap of an edge tile (known columns) is left out where its column is in the padding.
        bool Inside(int r, int j) => edgeAt is not { } at || ChannelColumn(c, at + r, j) is var col && col >= 0 && col < c.Window.W;
        w.Line("int o = ow * SW - PL, p = oh * OW + ow;");
        if (prefetch is { } start) w.Line(PrefetchStart("p", start.Group, "(C * KH)"));
        foreach (var q in qs)
            w.Line(string.Join(" ", rs.Select(r => $"{VT} a{q}_{r} = {(blocked ? $"first ? {VT}.Zero : {VS}.LoadUnsafe(ref yr, {Slot(q, r)})" : $"{VT}.Zero")};")));
        w.Open(blocked ? "for (int c = c0; c < c1; c++)" : "for (int c = 0; c < C; c++)");
        w.Open(ChannelRowEdges(c) ? "for (int i = i0; i < i1; i++)" : "for (int i = 0; i < KH; i++)");
        w.Line($"int t = (c * KH + i) * {I(c.Window.KW)};");
        w.Line("ref float xi = ref Unsafe.Add(ref xr, c * (H * W) + (oh * SH - PT + i * DH) * W); // an input row inside the map");
        if (prefetch is { } step) w.Line(PrefetchStep("c * KH + i", step.LastLine));
        for (int j = 0; j < c.Window.KW; j++)
        {
            var inside = rs.Where(r => Inside(r, j)).ToArray();
            if (inside.Length == 0) continue;
            foreach (var q in qs)
                w.Line($"{VT} w{q}_{j} = {VS}.LoadUnsafe(ref w{q}, (nuint)({Scaled("t", j, I(V))}));");
            foreach (var r in inside)
            {
                w.Line($"{VT} x{r}_{j} = {VS}.Create(Unsafe.Add(ref xi, {Sum("o", r * c.Window.StrideW + j * c.Window.DilationW)}));");
                foreach (var q in qs) w.Line($"a{q}_{r} = {Fma($"w{q}_{j}", $"x{r}_{j}", $"a{q}_{r}")};");
            }
        }
        w.Close();
        w.Close();
        if (blocked)
        {
            w.Open("if (!last)");
            foreach (var q in qs)
                foreach (var r in rs)
                    w.Line($"a{q}_{r}.StoreUnsafe(ref yr, {Slot(q, r)});");
            w.Close();
            w.Open("else");
        }
        foreach (var q in qs)
        {
            if (bias) w.Line($"{VT} b{q} = {VS}.LoadUnsafe(ref br, (nuint)({Scaled("mb", q, I(V))}));");
            foreach (var r in rs)
                w.Line($"({VAct(act.Inner, bias ? $"a{q}_{r} + b{q}" : $"a{q}_{r}")}).StoreUnsafe(ref yr, {Slot(q, r)});");
        }
        if (blocked) w.Close();
    }
}
