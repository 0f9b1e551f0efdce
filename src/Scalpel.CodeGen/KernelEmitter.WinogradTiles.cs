using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

/// <summary>
/// 3x3 and 5x5 stride-1 convolution by Winograd's minimal filtering in both directions, vectorised across
/// channels: F(4x4, 3x3) computes each 4x4 output tile from a 6x6 input tile with 36 products where the direct
/// convolution has 144; F(2x2, 5x5) each 2x2 tile with 36 against 100. The input is copied pixel-major
/// ([row][column][channel]), so both transforms work on whole vectors of channels, and the 36 products are GEMMs
/// [tiles x C] x [C x M] in the channel kernel's register tiles: no lanes are lost on short rows, which is where
/// the column variant (vectorised along rows) falls behind on small maps.
/// </summary>
internal sealed partial class KernelEmitter
{
    private const int TilePoints = Products * Products;

    /// <summary>
    /// Bᵀ, G and Aᵀ of F(4, 3) at the points 0, ±1, 1/2, -2 and infinity: in two dimensions the rounding error of
    /// 0, ±1, ±2 doubles on 64-channel sums (the column variant transforms once, and keeps those); exchanging 2 for 1/2
    /// moves magnitude from Aᵀ into G, whose products are formed in double when the weights load.
    /// </summary>
    private static readonly float[,] TileB3 =
    {
        { 1, -1.5f, -2, 1.5f, 1, 0 }, { 0, -1, 0.5f, 2.5f, 1, 0 }, { 0, 1, -2.5f, 0.5f, 1, 0 },
        { 0, -2, -1, 2, 1, 0 }, { 0, 0.5f, -1, -0.5f, 1, 0 }, { 0, 1, -1.5f, -2, 1.5f, 1 },
    };

    private static readonly double[,] TileG3 =
    {
        { 1, 0, 0 }, { 1.0 / 3, 1.0 / 3, 1.0 / 3 }, { -1.0 / 3, 1.0 / 3, -1.0 / 3 },
        { -16.0 / 15, -8.0 / 15, -4.0 / 15 }, { 1.0 / 15, -2.0 / 15, 4.0 / 15 }, { 0, 0, 1 },
    };

    private static readonly float[,] TileA3 = { { 1, 1, 1, 1, 1, 0 }, { 0, 1, -1, 0.5f, -2, 0 }, { 0, 1, 1, 0.25f, 4, 0 }, { 0, 1, -1, 0.125f, -8, 1 } };

    /// <summary>The transforms of the tile variant: those above for 3x3; for 5x5, F(2, 5)'s at 0, ±1, ±2 (with ±1/2 the error measured about the same).</summary>
    private static (float[,] B, double[,] G, float[,] A) TileTransforms(int k) => k == 3 ? (TileB3, TileG3, TileA3) : (WinogradB, WinogradG(5), WinogradA(5));

    /// <summary>
    /// Dense 3x3 or 5x5, stride 1, at least 8 input and output channels, and the same dilation d down and across: a
    /// dilated conv is d x d stride-1 convs, one per phase (padded row r % d, column q % d), each over its own
    /// plane of the padded input (row r / d, column q / d), whose outputs interleave.
    /// </summary>
    internal static bool WinogradTilesFit(ConvLayer c)
    {
        var w = c.Window;
        return c.Group == 1 && c.Format == WeightFormat.Dense && (w.KH is 3 or 5) && w.KW == w.KH && w.StrideH == 1 && w.StrideW == 1
            && w.DilationH == w.DilationW && c.C >= 8 && c.M >= 8;
    }

    /// <summary>Dilation: the phases are its square.</summary>
    private static int PhaseStep(ConvLayer c) => c.Window.DilationH;

    /// <summary>Tiles down and across one phase's outputs (all of them without dilation), each <see cref="TileRowsOf"/> square.</summary>
    private static (int Down, int Across) TileGrid(ConvLayer c)
    {
        int m = TileRowsOf(c), d = PhaseStep(c);
        return (((c.Window.OH + d - 1) / d + m - 1) / m, ((c.Window.OW + d - 1) / d + m - 1) / m);
    }

    /// <summary>Tiles of all phases.</summary>
    private static int TileCount(ConvLayer c)
    {
        var (down, across) = TileGrid(c);
        return PhaseStep(c) * PhaseStep(c) * down * across;
    }

    /// <summary>Rows and columns of one phase plane of the pixel-major padded input: whole tiles, each reading k - 1 past its own.</summary>
    private static (int Rows, int Columns) TilePlane(ConvLayer c)
    {
        var (down, across) = TileGrid(c);
        int m = TileRowsOf(c), k = c.Window.KH;
        return (down * m + k - 1, across * m + k - 1);
    }

    /// <summary>Input channels rounded up to whole vectors: the transforms run on vectors of channels.</summary>
    private int TileChannels(ConvLayer c) => (c.C + V - 1) / V * V;

    /// <summary>"F(4x4, 3x3)" or "F(2x2, 5x5)".</summary>
    private static string WinogradTilesName(ConvLayer c) => $"F({TileRowsOf(c)}x{TileRowsOf(c)}, {c.Window.KH}x{c.Window.KW})";

    /// <summary>
    /// Where the cost model takes it: under 0.7 of the better direct kernel's cost (the transforms are what the
    /// count can misjudge) and under the column variant's.
    /// </summary>
    public bool UsesWinogradTiles(ConvLayer c)
    {
        bool eligible = WinogradTilesFit(c);
        if (!eligible || KernelFor(c) != ConvKernel.Auto) return eligible && KernelFor(c) == ConvKernel.WinogradTiles;
        var (pixel, channel, k) = ConvCosts(c);
        double direct = k >= 8 * V ? Math.Min(pixel, channel) : pixel, tiles = WinogradTilesCost(c);
        return tiles < 0.7 * direct && (!WinogradFits(c) || tiles < WinogradCost(c));
    }

    /// <summary>
    /// Vector FMAs of the 36 GEMMs, vector operations of the two transforms (loads and stores counted), the
    /// transposing copies in and out at a sixth of a slot a float, and the transformed weights (36 per kernel where
    /// the direct kernels read k x k): a slot a vector, ten where they pass 16 MB and come from memory on every call
    /// (512 -> 512 channels: 37.7 MB, which ran at 20 GB/s and made the layer 1.3x slower than Winograd along columns).
    /// </summary>
    private double WinogradTilesCost(ConvLayer c)
    {
        double tiles = TileCount(c), m = TileRowsOf(c);
        int inBlocks = TileChannels(c) / V, outBlocks = ChannelVectors(c);
        double gemm = TilePoints * tiles * outBlocks * c.C;
        double input = tiles * inBlocks * 2 * Products * (12 + 22);
        double output = tiles * outBlocks * (Products * (Products + 3 * m) + m * (Products + 4 * m));
        double copies = ((double)c.C * c.Window.H * c.Window.W + (double)c.M * c.Window.OH * c.Window.OW) / 6;
        double weightVectors = (double)TilePoints * outBlocks * c.C, weights = weightVectors * (weightVectors * V * sizeof(float) > 16 << 20 ? 10 : 1);
        return gemm + input + output + copies + weights;
    }

    /// <summary>
    /// Floats from one point's [tiles x width] block to the next: rounded up to an odd number of 64-byte lines. At a
    /// multiple of 4 KB (16 tiles of 64 channels) a tile's 36 points fall in one set of an 8-way L1 and evict each other.
    /// </summary>
    private static int PointStride(int tiles, int width)
    {
        int lines = (tiles * width + 15) / 16;
        return (lines | 1) * 16;
    }

    /// <summary>Bytes of transformed input and products a block of tiles may hold: about half of a 1-2 MB L2.</summary>
    private const int TileBlockBytes = 512 * 1024;

    /// <summary>
    /// Tiles per block: each block's tiles go through the input transform, the GEMMs and the output transform
    /// before the next, so that the 36 points of each stay in L2 (on a 56x56 map of 64 channels all tiles' points
    /// take 3.6 MB). Each block reads all the transformed weights again, so a block keeps at least two GEMM tiles'
    /// worth of tiles, and a layer whose points fit twice the budget is one block. Blocks are as even as their count allows.
    /// </summary>
    private int TileBlock(ConvLayer c)
    {
        int tiles = TileCount(c), perTile = TilePoints * sizeof(float) * (TileChannels(c) + ChannelVectors(c) * V);
        if ((long)tiles * perTile <= 2L * TileBlockBytes) return tiles;
        int most = Math.Max(TileBlockBytes / perTile, 2 * ChannelRegisterTile(c, tiles).Columns);
        int blocks = (tiles + most - 1) / most;
        return (tiles + blocks - 1) / blocks;
    }

    /// <summary>Floats of the pixel-major padded input, of one block's transformed input and products, and of the pixel-major output.</summary>
    public (int Padded, int Transformed, int Products, int PixelMajor) WinogradTilesBufferSizes(ConvLayer c)
    {
        var (rows, columns) = TilePlane(c);
        int block = TileBlock(c), mp = ChannelVectors(c) * V;
        return (checked(PhaseStep(c) * PhaseStep(c) * rows * columns * TileChannels(c)), checked(TilePoints * PointStride(block, TileChannels(c))), checked(TilePoints * PointStride(block, mp)),
            checked(c.Window.OH * c.Window.OW * mp));
    }

    /// <summary>
    /// The loader's transform of k x k kernels [M][C][k][k] into what the 36 GEMMs read, [36][M / lanes][C][lanes]
    /// (G g Gᵀ per kernel, the last channel vector zero-filled), in double so every load gives the same floats.
    /// </summary>
    public static void WinogradTilesLoader(CodeWriter w, int k)
    {
        var gk = TileTransforms(k).G;
        w.Line();
        w.Line($"/// <summary>{k}x{k} kernels [M][C][{k}][{k}] as the 36 GEMMs of Winograd on tiles read them: [36][M / lanes][C][lanes], each kernel G g Gᵀ.</summary>");
        w.Open($"private static float[] {WinogradTilesLoaderName(k)}(float[] w, int m, int c, int lanes)");
        w.Line(GLiteral(gk, k));
        w.Line("int blocks = (m + lanes - 1) / lanes;");
        w.Line($"var packed = new float[{TilePoints} * blocks * c * lanes];");
        w.Open($"for (int o = 0; o < m; o++) for (int ch = 0; ch < c; ch++) for (int xi = 0; xi < {Products}; xi++) for (int nu = 0; nu < {Products}; nu++)");
        w.Line("double sum = 0;");
        w.Line($"for (int i = 0; i < {k}; i++) for (int j = 0; j < {k}; j++) sum += g[xi * {k} + i] * w[((o * c + ch) * {k} + i) * {k} + j] * g[nu * {k} + j];");
        w.Line($"packed[(((xi * {Products} + nu) * blocks + o / lanes) * c + ch) * lanes + o % lanes] = (float)sum;");
        w.Close();
        w.Line("return packed;");
        w.Close();
    }

    /// <summary>The loader's transform for k x k kernels: "WinogradTileWeights3x3".</summary>
    public static string WinogradTilesLoaderName(int k) => $"WinogradTileWeights{k}x{k}";

    private void WinogradTilesConv(CodeWriter w, string method, ConvLayer c, Epilogue act)
    {
        bool bias = c.Bias is not null;
        var (rows, columns) = TilePlane(c);
        var (down, across) = TileGrid(c);
        int tiles = TileCount(c), k = c.Window.KH, m = TileRowsOf(c), cp = TileChannels(c), mp = ChannelVectors(c) * V, block = TileBlock(c), d = PhaseStep(c);
        int inSize = c.C * c.Window.H * c.Window.W, outSize = c.M * c.Window.OH * c.Window.OW;
        w.Line($"// {k}x{k} convolution by two-dimensional Winograd {WinogradTilesName(c)}: {tiles} output tiles of {m}x{m}, each from a 6x6 input tile,");
        if (d > 1) w.Line($"// the dilation {d} as {d * d} stride-1 convolutions, one per phase plane of the padded input, whose outputs interleave;");
        w.Line($"// 36 GEMMs of [tiles x {c.C}] x [{c.C} x {c.M}] where the direct convolution has {m * m * k * k} products a tile; channels in {V}-lane vectors,");
        w.Line($"// tiles in blocks of {block} whose transformed input and products stay in L2.");
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y{(act.Residual ? ", ReadOnlySpan<float> residual" : "")}, float[] w{(bias ? ", float[] b" : "")}, Span<float> padded, Span<float> transformed, Span<float> products, Span<float> pixelMajor)");
        PixelMajorScratch(w, c);
        w.Line($"const int C = {I(c.C)}, H = {I(c.Window.H)}, W = {I(c.Window.W)}, CP = {I(cp)}, {(d > 1 ? $"Hp = {I(rows)}, " : "")}Wp = {I(columns)}, PT = {I(c.Window.PadTop)}, PL = {I(c.Window.PadLeft)}, M = {I(c.M)}, MP = {I(mp)}, P = {I(c.Window.OH * c.Window.OW)};");
        PaddingToZero(w, c, rows);
        OpenSamples(w, c.Batch);
        w.Line($"ReadOnlySpan<float> xn = {Part("x", inSize, c.Batch)};");
        w.Line($"Span<float> yn = {Part("y", outSize, c.Batch)};");
        w.Line("ref float xs = ref MemoryMarshal.GetReference(xn);");
        w.Line("ref float pr = ref MemoryMarshal.GetReference(padded);");
        PlanesToPixelMajor(w, c);
        w.Open($"for (int t0 = 0; t0 < {I(tiles)}; t0 += {I(block)})");
        w.Line($"int count = Math.Min({I(block)}, {I(tiles)} - t0);");
        w.Line($"{method}_Input(padded, transformed, t0, count);");
        w.Line($"{method}_Gemm(transformed, products, w, count);");
        w.Line($"{method}_Output(products, pixelMajor{(bias ? ", b" : "")}, t0, count);");
        w.Close();
        PixelMajorToPlanes(w, c, act, outSize);
        w.Close();
        w.Close();
        w.Line();
        WinogradTilesInput(w, method, c, rows, columns, block, down, across, cp);
        WinogradTilesGemm(w, method, c, block, tiles, cp, mp);
        WinogradTilesOutput(w, method, c, act, bias, block, down, across, mp);
    }

    /// <summary>
    /// Per tile and vector of input channels, Bᵀ d B: the 6 sums along each input row go to a contiguous scratch of
    /// 36 vectors, the 6 sums down each of its columns to the tile's 36 points.
    /// </summary>
    private void WinogradTilesInput(CodeWriter w, string method, ConvLayer c, int rows, int columns, int block, int down, int across, int cp)
    {
        int m = TileRowsOf(c);
        var b = TileTransforms(c.Window.KH).B;
        w.Line(Hot);
        w.Open($"private static void {method}_Input(ReadOnlySpan<float> padded, Span<float> transformed, int t0, int count)");
        string phases = PhaseStep(c) > 1 ? $"Hp = {I(rows)}, Down = {I(down)}, " : "";
        w.Line($"const int CP = {I(cp)}, {phases}Wp = {I(columns)}, Across = {I(across)}, Point = {I(PointStride(block, cp))};");
        w.Line("ref float pr = ref MemoryMarshal.GetReference(padded);");
        w.Line("ref float tr = ref MemoryMarshal.GetReference(transformed);");
        if (target.SimdBits < 512)
        {
            w.Line($"Span<float> rowSums = stackalloc float[{I(TilePoints * V)}];");
            w.Line("ref float u = ref MemoryMarshal.GetReference(rowSums);");
        }
        w.Open("for (int t = 0; t < count; t++)");
        TileOrigin(w, c);
        w.Line($"ref float d = ref Unsafe.Add(ref pr, {(PhaseStep(c) > 1 ? "phase * Hp * Wp * CP + " : "")}(ty * Wp + tx) * {I(m)} * CP);");
        w.Line("ref float o = ref Unsafe.Add(ref tr, t * CP);");
        w.Open($"for (int c = 0; c < CP; c += {I(V)})");
        if (target.SimdBits >= 512)
        {
            // 32 registers: the row sums of half the columns (18 vectors) stay in registers, and only the outputs are stored.
            for (int half = 0; half < 2; half++)
            {
                w.OpenBlock();
                for (int r = 0; r < Products; r++)
                {
                    w.Line($"ref float d{r}r = ref Unsafe.Add(ref d, {(r == 0 ? "c" : $"{r} * Wp * CP + c")});");
                    w.Line(string.Join(" ", Enumerable.Range(0, Products).Select(j => $"{(r == 0 ? VT + " " : "")}d{j} = {VS}.LoadUnsafe(ref d{r}r{(j == 0 ? "" : $", {j} * CP")});")));
                    for (int nu = 3 * half; nu < 3 * half + 3; nu++)
                        w.Line($"{VT} u{r}_{nu} = {VectorCombination(Enumerable.Range(0, Products).Select(j => (b[nu, j], $"d{j}")))};");
                }
                for (int nu = 3 * half; nu < 3 * half + 3; nu++)
                    for (int xi = 0; xi < Products; xi++)
                        w.Line($"{VectorCombination(Enumerable.Range(0, Products).Select(r => (b[xi, r], $"u{r}_{nu}")))}.StoreUnsafe(ref o, {Nuint($"c + {xi * Products + nu} * Point")});");
                w.Close();
            }
            w.Close();
            w.Close();
            w.Close();
            w.Line();
            return;
        }
        w.Open($"for (int r = 0; r < {Products}; r++)");
        w.Line("ref float dr = ref Unsafe.Add(ref d, r * Wp * CP + c);");
        w.Line(string.Join(" ", Enumerable.Range(0, Products).Select(j => $"{VT} d{j} = {VS}.LoadUnsafe(ref dr{(j == 0 ? "" : $", {j} * CP")});")));
        for (int nu = 0; nu < Products; nu++)
            w.Line($"{VectorCombination(Enumerable.Range(0, Products).Select(j => (b[nu, j], $"d{j}")))}.StoreUnsafe(ref u, {Nuint($"(r * {Products} + {nu}) * {I(V)}")});");
        w.Close();
        w.Open($"for (int nu = 0; nu < {Products}; nu++)");
        w.Line(string.Join(" ", Enumerable.Range(0, Products).Select(r => $"{VT} e{r} = {VS}.LoadUnsafe(ref u, {Nuint($"({r * Products} + nu) * {I(V)}")});")));
        for (int xi = 0; xi < Products; xi++)
            w.Line($"{VectorCombination(Enumerable.Range(0, Products).Select(r => (b[xi, r], $"e{r}")))}.StoreUnsafe(ref o, {Nuint($"c + ({xi * Products} + nu) * Point")});");
        w.Close();
        w.Close();
        w.Close();
        w.Close();
        w.Line();
    }

    /// <summary>
    /// The 36 GEMMs: per point, tiles x 2 vectors of output channels in accumulators (the channel kernel's tile),
    /// one broadcast transformed input per tile and input channel.
    /// </summary>
    private void WinogradTilesGemm(CodeWriter w, string method, ConvLayer c, int block, int tiles, int cp, int mp)
    {
        var (pairs, tile) = ChannelRegisterTile(c, block);
        // Tiles past the last whole group: in a full block, and in the last block.
        var rest = new[] { block % tile, tiles % block == 0 ? 0 : tiles % block % tile }.Where(r => r > 0).Distinct().ToArray();
        int blocks = ChannelVectors(c);
        w.Line(Hot);
        w.Open($"private static void {method}_Gemm(ReadOnlySpan<float> x, Span<float> y, ReadOnlySpan<float> w, int count)");
        w.Line($"const int C = {I(c.C)}, CP = {I(cp)}, MP = {I(mp)}, In = {I(PointStride(block, cp))}, Out = {I(PointStride(block, mp))};");
        w.Line("ref float xr = ref MemoryMarshal.GetReference(x);");
        w.Line("ref float yr = ref MemoryMarshal.GetReference(y);");
        w.Line("ref float wr = ref MemoryMarshal.GetReference(w);");
        w.Open($"for (int p = 0; p < {TilePoints}; p++)");
        w.Line("ref float xs = ref Unsafe.Add(ref xr, p * In);");
        w.Line("ref float ys = ref Unsafe.Add(ref yr, p * Out);");
        w.Line($"ref float ws = ref Unsafe.Add(ref wr, p * {I(blocks * c.C * V)});");
        w.Line("int mb = 0;");
        int full = blocks / pairs * pairs;
        if (full > 0) WinogradTilesBlocks(w, c, $"for (; mb < {I(full)}; mb += {pairs})", pairs, tile, rest);
        if (full < blocks) WinogradTilesBlocks(w, c, "// the last channel vector", 1, tile, rest);
        w.Close();
        w.Close();
        w.Line();
    }

    private void WinogradTilesBlocks(CodeWriter w, ConvLayer c, string loop, int channels, int tile, int[] rest)
    {
        // As in the channel kernel: the weights the next pair reads (the next point's first after a point's last pair;
        // the points' weights lie one after another) are prefetched over this pair's first tile groups.
        int blockFloats = c.C * V, total = TilePoints * ChannelVectors(c) * blockFloats;
        int lastLine = LastLine((long)channels * blockFloats);
        bool prefetch = channels == 2 && lastLine >= 0 && (long)total * sizeof(float) >= PrefetchWeightBytes;
        w.Open(loop);
        for (int q = 0; q < channels; q++)
            w.Line($"ref float w{q} = ref Unsafe.Add(ref ws, {Scaled("mb", q, I(blockFloats))});");
        if (prefetch)
            w.Line($"ref float wn = ref Unsafe.Add(ref wr, Math.Min(p * {I(ChannelVectors(c) * blockFloats)} + (mb + {channels}) * {I(blockFloats)}, {I(total - channels * blockFloats)}));");
        w.Line("int t = 0;");
        w.Open($"for (; t <= count - {tile}; t += {tile})");
        WinogradTilesGemmBody(w, channels, tile, prefetch ? (tile, lastLine) : null);
        w.Close();
        if (rest.Length > 0)
        {
            w.Open("switch (count - t) // the last tiles of a block");
            foreach (var r in rest)
            {
                w.Open($"case {r}:");
                WinogradTilesGemmBody(w, channels, r, prefetch ? (tile, lastLine) : null);
                w.Line("break;");
                w.Close();
            }
            w.Close();
        }
        w.Close();
    }

    /// <summary>A channels x tiles group of products over all input channels; with <paramref name="prefetch"/>, group n prefetches lines n x C onwards of wn.</summary>
    private void WinogradTilesGemmBody(CodeWriter w, int channels, int tiles, (int Group, int LastLine)? prefetch = null)
    {
        var qs = Enumerable.Range(0, channels).ToArray();
        var rs = Enumerable.Range(0, tiles).ToArray();
        foreach (var q in qs)
            w.Line(string.Join(" ", rs.Select(r => $"{VT} a{q}_{r} = {VT}.Zero;")));
        w.Line("ref float xt = ref Unsafe.Add(ref xs, t * CP);");
        if (prefetch is { } start) w.Line(PrefetchStart("t", start.Group, "C"));
        w.Open("for (int c = 0; c < C; c++)");
        if (prefetch is { } step) w.Line(PrefetchStep("c", step.LastLine));
        foreach (var q in qs)
            w.Line($"{VT} w{q}_c = {VS}.LoadUnsafe(ref w{q}, (nuint)(c * {I(V)}));");
        foreach (var r in rs)
        {
            w.Line($"{VT} x{r} = {VS}.Create(Unsafe.Add(ref xt, {(r == 0 ? "c" : $"c + {r} * CP")}));");
            foreach (var q in qs) w.Line($"a{q}_{r} = {Fma($"w{q}_c", $"x{r}", $"a{q}_{r}")};");
        }
        w.Close();
        foreach (var q in qs)
            foreach (var r in rs)
                w.Line($"a{q}_{r}.StoreUnsafe(ref ys, (nuint)({Sum("t", r)}) * MP + {Scaled("(nuint)mb", q, I(V))});");
    }

    /// <summary>
    /// Per tile and vector of output channels, Aᵀ m A: the sums along each row of its 36 products go to a contiguous
    /// scratch, the sums down their columns are the outputs, stored pixel-major with the bias and the inner clamp.
    /// </summary>
    private void WinogradTilesOutput(CodeWriter w, string method, ConvLayer c, Epilogue act, bool bias, int block, int down, int across, int mp)
    {
        int m = TileRowsOf(c);
        var a = TileTransforms(c.Window.KH).A;
        w.Line(Hot);
        w.Open($"private static void {method}_Output(ReadOnlySpan<float> products, Span<float> y{(bias ? ", ReadOnlySpan<float> b" : "")}, int t0, int count)");
        w.Line($"const int MP = {I(mp)}, OH = {I(c.Window.OH)}, OW = {I(c.Window.OW)}, {(PhaseStep(c) > 1 ? $"Down = {I(down)}, " : "")}Across = {I(across)}, Point = {I(PointStride(block, mp))};");
        w.Line("ref float pr = ref MemoryMarshal.GetReference(products);");
        w.Line("ref float yr = ref MemoryMarshal.GetReference(y);");
        if (bias) w.Line("ref float br = ref MemoryMarshal.GetReference(b);");
        w.Line($"Span<float> rowSums = stackalloc float[{I(Products * m * V)}];");
        w.Line("ref float u = ref MemoryMarshal.GetReference(rowSums);");
        w.Open("for (int t = 0; t < count; t++)");
        TileOrigin(w, c);
        int d = PhaseStep(c);
        if (d == 1) w.Line($"int oy = ty * {I(m)}, ox = tx * {I(m)}, rows = Math.Min({I(m)}, OH - oy), columns = Math.Min({I(m)}, OW - ox);");
        else
        {
            w.Line($"int py = phase / {I(d)}, px = phase - py * {I(d)};");
            w.Line($"int oy = py + ty * {I(m * d)}, ox = px + tx * {I(m * d)};");
            w.Line($"int rows = Math.Min({I(m)}, (OH - py + {I(d - 1)}) / {I(d)} - ty * {I(m)}), columns = Math.Min({I(m)}, (OW - px + {I(d - 1)}) / {I(d)} - tx * {I(m)});");
            w.Line("if (rows <= 0 || columns <= 0) continue; // a tile of a phase with fewer outputs than the first");
        }
        w.Line("ref float q = ref Unsafe.Add(ref pr, t * MP);");
        w.Line("ref float yo = ref Unsafe.Add(ref yr, (oy * OW + ox) * MP);");
        w.Open($"for (int mb = 0; mb < MP; mb += {I(V)})");
        w.Open($"for (int xi = 0; xi < {Products}; xi++)");
        w.Line("ref float qx = ref Unsafe.Add(ref q, mb + xi * " + I(Products) + " * Point);");
        w.Line(string.Join(" ", Enumerable.Range(0, Products).Select(nu => $"{VT} s{nu} = {VS}.LoadUnsafe(ref qx{(nu == 0 ? "" : $", {nu} * Point")});")));
        for (int j = 0; j < m; j++)
            w.Line($"{VectorCombination(Enumerable.Range(0, Products).Select(nu => ((float)a[j, nu], $"s{nu}")))}.StoreUnsafe(ref u, {Nuint($"(xi * {m} + {j}) * {I(V)}")});");
        w.Close();
        if (bias) w.Line($"{VT} bias = {VS}.LoadUnsafe(ref br, (nuint)mb);");
        for (int j = 0; j < m; j++)
        {
            w.Open(j == 0 ? "// column 0 of the tile" : $"if ({j} < columns)");
            w.Line(string.Join(" ", Enumerable.Range(0, Products).Select(xi => $"{VT} e{xi} = {VS}.LoadUnsafe(ref u, {I((xi * m + j) * V)});")));
            for (int i = 0; i < m; i++)
            {
                string value = VectorCombination(Enumerable.Range(0, Products).Select(xi => ((float)a[i, xi], $"e{xi}")));
                int at = (i * c.Window.OW + j) * PhaseStep(c);
                string store = $"({VAct(act.Inner, bias ? $"{value} + bias" : value)}).StoreUnsafe(ref yo, {Nuint(Sum("mb", at == 0 ? "" : $"{I(at)} * MP"))});";
                w.Line(i == 0 ? store : $"if ({i} < rows) {store}");
            }
            w.Close();
        }
        w.Close();
        w.Close();
        w.Close();
        w.Line();
    }

    /// <summary>
    /// The sum of coefficient x vector term as a chain of FMAs where the target has them (one operation a term past
    /// the first, where a multiply and an add take two): unit terms first, zeros left out.
    /// </summary>
    private string VectorCombination(IEnumerable<(float Coefficient, string Term)> terms)
    {
        if (!target.Fma) return Combination(terms);
        var nonzero = terms.Where(t => t.Coefficient != 0).OrderBy(t => Math.Abs(t.Coefficient) != 1).ToList();
        if (nonzero.Count == 0) return $"{VT}.Zero";
        string sum = nonzero[0].Coefficient switch { 1 => nonzero[0].Term, -1 => $"-{nonzero[0].Term}", var k => $"{nonzero[0].Term} * {F(k)}" };
        foreach (var (k, term) in nonzero.Skip(1))
            sum = Math.Abs(k) == 1 ? $"{sum} {(k < 0 ? "-" : "+")} {term}" : Fma(term, $"{VS}.Create({F(k)})", sum);
        return $"({sum})";
    }

    /// <summary>Tile t of the block's phase (with dilation), row and column in the phase's tile grid.</summary>
    private static void TileOrigin(CodeWriter w, ConvLayer c)
    {
        if (PhaseStep(c) == 1) w.Line("int ty = (t0 + t) / Across, tx = t0 + t - ty * Across;");
        else
        {
            w.Line("int phase = (t0 + t) / (Down * Across), rest = t0 + t - phase * (Down * Across);");
            w.Line("int ty = rest / Across, tx = rest - ty * Across;");
        }
    }

    /// <summary>
    /// The input [C][H][W] into the padded pixel-major copy [row][column][CP], a row at a time: blocks of V channels
    /// x V columns transposed in registers (rows under a vector: blocks of the flattened plane), the columns and
    /// channels past the last whole block one by one; with dilation, into the phase planes float by float.
    /// </summary>
    private void PlanesToPixelMajor(CodeWriter w, ConvLayer c)
    {
        int d = PhaseStep(c);
        if (d > 1)
        {
            w.Line($"// padded row r and column q of the input go to row r / {d}, column q / {d} of phase plane (r % {d}, q % {d}), one float at a time");
            w.Open("for (int c = 0; c < C; c++) for (int h = 0; h < H; h++)");
            w.Line($"int r = h + PT, plane = r % {I(d)} * {I(d)};");
            w.Line($"ref float to = ref Unsafe.Add(ref pr, r / {I(d)} * Wp * CP + c);");
            w.Line("ref float from = ref Unsafe.Add(ref xs, (c * H + h) * W);");
            w.Line($"for (int i = 0; i < W; i++) Unsafe.Add(ref to, ((plane + (i + PL) % {I(d)}) * Hp * Wp + (i + PL) / {I(d)}) * CP) = Unsafe.Add(ref from, i);");
            w.Close();
            return;
        }
        Need("Transpose", VT);
        if (FlatPixelMajorCopy(c))
        {
            // Rows under a vector: blocks of V pixels of the flattened plane (the last one overlapping), transposed
            // into the block scratch, then each pixel's vector stored at its padded place.
            w.OpenBlock();
            w.Line("ref float bt = ref MemoryMarshal.GetReference(block);");
            w.Line("int c = 0;");
            w.Open($"for (; c <= C - {I(V)}; c += {I(V)})");
            w.Open($"for (int q0 = 0; q0 < H * W; q0 += {I(V)})");
            w.Line($"int p = Math.Min(q0, H * W - {I(V)});");
            w.Line($"Transpose(ref Unsafe.Add(ref xs, c * H * W + p), H * W, ref bt, {I(V)});");
            w.Line($"for (int j = 0; j < {I(V)}; j++) {VS}.LoadUnsafe(ref bt, (nuint)(j * {I(V)})).StoreUnsafe(ref pr, (nuint)((((p + j) / W + PT) * Wp + (p + j) % W + PL) * CP + c));");
            w.Close();
            w.Close();
            w.Line("for (; c < C; c++) for (int p = 0; p < H * W; p++) Unsafe.Add(ref pr, ((p / W + PT) * Wp + p % W + PL) * CP + c) = Unsafe.Add(ref xs, c * H * W + p);");
            if (c.C % V != 0) w.Line("for (; c < CP; c++) for (int p = 0; p < H * W; p++) Unsafe.Add(ref pr, ((p / W + PT) * Wp + p % W + PL) * CP + c) = 0f;");
            w.Close();
            return;
        }
        w.Open("for (int h = 0; h < H; h++)");
        w.Line("ref float from = ref Unsafe.Add(ref xs, h * W);");
        w.Line("ref float to = ref Unsafe.Add(ref pr, ((h + PT) * Wp + PL) * CP);");
        w.Line("int c = 0;");
        if (c.C >= V && c.Window.W >= V)
        {
            w.Open($"for (; c <= C - {I(V)}; c += {I(V)})");
            w.Line("int i = 0;");
            w.Line($"for (; i <= W - {I(V)}; i += {I(V)}) Transpose(ref Unsafe.Add(ref from, c * H * W + i), H * W, ref Unsafe.Add(ref to, i * CP + c), CP);");
            if (c.Window.W % V != 0) w.Line($"for (; i < W; i++) for (int k = c; k < c + {I(V)}; k++) Unsafe.Add(ref to, i * CP + k) = Unsafe.Add(ref from, k * H * W + i);");
            w.Close();
        }
        w.Line("for (; c < C; c++) for (int i = 0; i < W; i++) Unsafe.Add(ref to, i * CP + c) = Unsafe.Add(ref from, c * H * W + i);");
        if (c.C % V != 0) w.Line("for (; c < CP; c++) for (int i = 0; i < W; i++) Unsafe.Add(ref to, i * CP + c) = 0f;");
        w.Close();
    }

    /// <summary>
    /// Zeroes what the copy does not write, as the buffer is scratch that other layers use: without dilation the
    /// padding rows and the padding columns of the input's rows (the copy zeroes the lanes past C); with dilation,
    /// whose phase planes interleave padding and input, all of it. Once per call: every sample's copy writes the same
    /// places.
    /// </summary>
    private static void PaddingToZero(CodeWriter w, ConvLayer c, int rows)
    {
        var (_, columns) = TilePlane(c);
        if (PhaseStep(c) > 1)
        {
            w.Line($"padded.Slice(0, {I(PhaseStep(c) * PhaseStep(c) * rows * columns)} * CP).Clear();");
            return;
        }
        w.Line($"// the padding border; the copy below writes the rest, the lanes past C included");
        if (c.Window.PadTop > 0) w.Line("padded.Slice(0, PT * Wp * CP).Clear();");
        if (rows > c.Window.PadTop + c.Window.H) w.Line($"padded.Slice((PT + H) * Wp * CP, {I(rows - c.Window.PadTop - c.Window.H)} * Wp * CP).Clear();");
        if (c.Window.PadLeft > 0 || columns > c.Window.PadLeft + c.Window.W)
        {
            w.Open("for (int r = PT; r < PT + H; r++)");
            if (c.Window.PadLeft > 0) w.Line("padded.Slice(r * Wp * CP, PL * CP).Clear();");
            if (columns > c.Window.PadLeft + c.Window.W) w.Line($"padded.Slice((r * Wp + PL + W) * CP, {I(columns - c.Window.PadLeft - c.Window.W)} * CP).Clear();");
            w.Close();
        }
    }

    /// <summary>Whether the copy into the pixel-major input transposes blocks of the flattened plane (rows under one vector).</summary>
    private bool FlatPixelMajorCopy(ConvLayer c) => PhaseStep(c) == 1 && c.C >= V && c.Window.W < V && c.Window.H * c.Window.W >= V;

    /// <summary>The V x V block the flattened copy transposes into, allocated once before the samples loop.</summary>
    private void PixelMajorScratch(CodeWriter w, ConvLayer c)
    {
        if (FlatPixelMajorCopy(c)) w.Line($"Span<float> block = stackalloc float[{I(V * V)}];");
    }

    /// <summary>
    /// Pixel-major [P][MP] to channel-major [M][P], V pixels at a time: blocks of V pixels x V channels transposed in
    /// registers (the channels past the last whole vector one by one), then the gate, and with a residual the skip
    /// added and the outer clamp, on the block's vectors while they are in L1; the pixels past the last whole block
    /// one by one. The channel kernels' last step.
    /// </summary>
    private void PixelMajorToPlanes(CodeWriter w, ConvLayer c, Epilogue act, int outSize)
    {
        Need("Transpose", VT);
        w.Line("ref float src = ref MemoryMarshal.GetReference(pixelMajor);");
        w.Line("ref float dst = ref MemoryMarshal.GetReference(yn);");
        if (act.Residual) w.Line($"ref float skip = ref MemoryMarshal.GetReference({Part("residual", outSize, c.Batch)});");
        w.Line("int p0 = 0;");
        int pixels = c.Window.OH * c.Window.OW;
        if (pixels >= V)
        {
            w.Open($"for (; p0 <= P - {I(V)}; p0 += {I(V)})");
            if (c.M >= V) w.Line($"for (int m = 0; m <= M - {I(V)}; m += {I(V)}) Transpose(ref Unsafe.Add(ref src, p0 * MP + m), MP, ref Unsafe.Add(ref dst, m * P + p0), P);");
            if (c.M % V != 0) w.Line($"for (int m = {I(c.M / V * V)}; m < M; m++) for (int p = p0; p < p0 + {I(V)}; p++) Unsafe.Add(ref dst, m * P + p) = Unsafe.Add(ref src, p * MP + m);");
            if (act.Gate is not null || act.Residual)
            {
                w.Open("for (int m = 0; m < M; m++)");
                w.Line($"{VT} v = {VS}.LoadUnsafe(ref dst, (nuint)(m * P + p0));");
                if (act.Gate is { } g) w.Line($"v = {Call(g, "v", VT)};");
                if (act.Residual) w.Line($"v = {VAct(act.Outer, $"v + {VS}.LoadUnsafe(ref skip, (nuint)(m * P + p0))")};");
                w.Line("v.StoreUnsafe(ref dst, (nuint)(m * P + p0));");
                w.Close();
            }
            w.Close();
        }
        if (pixels % V != 0)
        {
            w.Open($"// the last {pixels % V} pixel(s)");
            if (act.Gate is { } gate) w.Line(GatePass(gate, "pixelMajor.Slice(p0 * MP, (P - p0) * MP)"));
            if (act.Residual)
                w.Line($"for (int m = 0; m < M; m++) for (int p = p0; p < P; p++) Unsafe.Add(ref dst, m * P + p) = {Act(act.Outer, "Unsafe.Add(ref src, p * MP + m) + Unsafe.Add(ref skip, m * P + p)")};");
            else w.Line("for (int m = 0; m < M; m++) for (int p = p0; p < P; p++) Unsafe.Add(ref dst, m * P + p) = Unsafe.Add(ref src, p * MP + m);");
            w.Close();
        }
    }
}
