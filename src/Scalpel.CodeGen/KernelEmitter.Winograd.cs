using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

/// <summary>
/// 3x3 and 5x5 stride-1 convolution by Winograd's minimal filtering along the columns of the map: F(4, 3) computes
/// each tile of 4 output rows from 6 transformed input rows, 6 products per kernel column instead of 12 (half the
/// multiply-adds); F(2, 5) each tile of 2 rows, 6 instead of 10. Both use the interpolation points 0, ±1, ±2 and
/// infinity, so they share Bᵀ. The 6 products are each a 1 x k convolution over C transformed planes, which the
/// pixel GEMM computes (taps as shifted views); rows are the only axis transformed, so every transform reads and
/// writes whole rows of contiguous vectors.
/// </summary>
internal sealed partial class KernelEmitter
{
    /// <summary>Bᵀ of F(4, 3) and F(2, 5): transformed row ξ of a tile = sum over r of B[ξ, r] x the tile's input row r.</summary>
    private static readonly float[,] WinogradB =
    {
        { 4, 0, -5, 0, 1, 0 }, { 0, -4, -4, 1, 1, 0 }, { 0, 4, -4, -1, 1, 0 },
        { 0, -2, -1, 2, 1, 0 }, { 0, 2, -1, -2, 1, 0 }, { 0, 4, 0, -5, 0, 1 },
    };

    /// <summary>G: kernel column transformed for product ξ = sum over kernel rows of G[ξ, i] x w[i]; per kernel size.</summary>
    private static double[,] WinogradG(int k) => k == 3
        ? new[,]
        {
            { 1.0 / 4, 0, 0 }, { -1.0 / 6, -1.0 / 6, -1.0 / 6 }, { -1.0 / 6, 1.0 / 6, -1.0 / 6 },
            { 1.0 / 24, 1.0 / 12, 1.0 / 6 }, { 1.0 / 24, -1.0 / 12, 1.0 / 6 }, { 0, 0, 1 },
        }
        : new[,]
        {
            { 1.0 / 4, 0, 0, 0, 0 }, { -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6 }, { -1.0 / 6, 1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6 },
            { 1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 3, 2.0 / 3 }, { 1.0 / 24, -1.0 / 12, 1.0 / 6, -1.0 / 3, 2.0 / 3 }, { 0, 0, 0, 0, 1 },
        };

    /// <summary>Aᵀ: output row r of a tile = sum over ξ of A[r, ξ] x product ξ; 4 rows for F(4, 3), 2 for F(2, 5).</summary>
    private static float[,] WinogradA(int k) => k == 3
        ? new float[,] { { 1, 1, 1, 1, 1, 0 }, { 0, 1, -1, 2, -2, 0 }, { 0, 1, 1, 4, 4, 0 }, { 0, 1, -1, 8, -8, 1 } }
        : new float[,] { { 1, 1, 1, 1, 1, 0 }, { 0, 1, -1, 2, -2, 1 } };

    private const int Products = 6;

    /// <summary>Output rows per tile: 4 for 3x3 kernels, 2 for 5x5.</summary>
    private static int TileRowsOf(ConvLayer c) => Products + 1 - c.Window.KH;

    private static int Tiles(ConvLayer c) => (c.Window.OH + TileRowsOf(c) - 1) / TileRowsOf(c);

    /// <summary>"F(4, 3)" or "F(2, 5)".</summary>
    private static string WinogradName(ConvLayer c) => $"F({TileRowsOf(c)}, {c.Window.KH})";

    /// <summary>
    /// Dense 3x3 or 5x5, stride 1, no dilation or groups, at least 8 input and output channels and one tile of
    /// output rows, and a cost model that counts it under 0.7 of the better direct kernel: the transforms and the
    /// rows rounded up to whole tiles are what it adds.
    /// </summary>
    public bool UsesWinograd(ConvLayer c)
    {
        bool eligible = WinogradFits(c);
        if (!eligible || KernelFor(c) != ConvKernel.Auto) return eligible && KernelFor(c) == ConvKernel.Winograd;
        var (pixel, channel, k) = ConvCosts(c);
        double direct = k >= 8 * V ? Math.Min(pixel, channel) : pixel;
        // Measured (conv sweep): under 0.7 Winograd won on every shape; between 0.7 and 1 (5x5 on 13-14 maps) the
        // runs disagreed (0.6x to 1.1x the channel kernel's time), so the direct kernel keeps those.
        return WinogradCost(c) < 0.7 * direct;
    }

    /// <summary>Dense 3x3 or 5x5, stride 1, no dilation or groups, at least 8 input and output channels and one tile of output rows.</summary>
    internal static bool WinogradFits(ConvLayer c)
    {
        var w = c.Window;
        return c.Group == 1 && c.Format == WeightFormat.Dense && (w.KH is 3 or 5) && w.KW == w.KH && w.StrideH == 1 && w.StrideW == 1
            && !w.Dilated && c.C >= 8 && c.M >= 8 && w.OH >= TileRowsOf(c);
    }

    /// <summary>Vector FMAs of the 6 GEMMs plus vector operations of the two transforms.</summary>
    private double WinogradCost(ConvLayer c)
    {
        var t = WinogradPlane(c);
        int tiles = Tiles(c), vectors = (t.Columns + V - 1) / V;
        double gemm = (double)Products * c.M * Math.Max(1, (WinogradWide(c) + V - 1) / V) * c.Window.KW * c.C;
        return gemm + (double)c.C * tiles * vectors * Products * 5 + (double)c.M * tiles * TileRowsOf(c) * ((c.Window.OW + V - 1) / V) * 6;
    }

    /// <summary>Rows and columns of the zero-padded input: whole tiles of 6 rows (a tile's rows apart), and the row plus both pads.</summary>
    private static (int Rows, int Columns) WinogradPlane(ConvLayer c) =>
        (TileRowsOf(c) * Tiles(c) + Products - TileRowsOf(c), c.Window.OW + c.Window.KW - 1);

    /// <summary>The 1 x k convolution each product is: C channels of [tiles x padded row] transformed planes, OW outputs per row.</summary>
    private static ConvLayer WinogradProduct(ConvLayer c)
    {
        var (_, columns) = WinogradPlane(c);
        int tiles = Tiles(c);
        return c with { Batch = 1, Group = 1, Window = new Window2D(tiles, columns, 1, c.Window.KW, 1, 1, 1, 1, 0, 0, 0, 0, tiles, c.Window.OW) };
    }

    /// <summary>Columns of one product's wide rows (the pixel GEMM computes rows at the padded width).</summary>
    private static int WinogradWide(ConvLayer c) => WideColumns(WinogradProduct(c));

    /// <summary>
    /// The loader's transform of a layer's k x k kernels [M][C][k][k] into what the 6 GEMMs read, [ξ][M][C x k]: each
    /// kernel column by G, in double, so every load gives the same floats. Written once per kernel size used.
    /// </summary>
    public static void WinogradLoader(CodeWriter w, int k)
    {
        var gk = WinogradG(k);
        w.Line();
        w.Line($"/// <summary>{k}x{k} kernels [M][C][{k}][{k}] as Winograd's six GEMMs read them: [6][M][C x {k}], kernel columns transformed.</summary>");
        w.Open($"private static float[] {WinogradLoaderName(k)}(float[] w, int m, int c)");
        w.Line(GLiteral(gk, k));
        w.Line($"var packed = new float[{Products} * m * c * {k}];");
        w.Open($"for (int xi = 0; xi < {Products}; xi++) for (int o = 0; o < m; o++) for (int ch = 0; ch < c; ch++) for (int dx = 0; dx < {k}; dx++)");
        w.Line("double sum = 0;");
        w.Line($"for (int i = 0; i < {k}; i++) sum += g[xi * {k} + i] * w[((o * c + ch) * {k} + i) * {k} + dx];");
        w.Line($"packed[((xi * m + o) * c + ch) * {k} + dx] = (float)sum;");
        w.Close();
        w.Line("return packed;");
        w.Close();
    }

    /// <summary>G [6 x k] as the loader's row-major span of doubles, each printed to round-trip.</summary>
    private static string GLiteral(double[,] gk, int k) =>
        $"ReadOnlySpan<double> g = [{string.Join(", ", Enumerable.Range(0, Products).SelectMany(xi => Enumerable.Range(0, k).Select(i => gk[xi, i].ToString("R", System.Globalization.CultureInfo.InvariantCulture))))}];";

    /// <summary>The loader's transform for k x k kernels: "WinogradWeights3x3".</summary>
    public static string WinogradLoaderName(int k) => $"WinogradWeights{k}x{k}";

    /// <summary>Floats of the padded input, the transformed planes (with a vector of slack for the GEMM's last loads) and the products.</summary>
    public (int Padded, int Transformed, int Products) WinogradBufferSizes(ConvLayer c)
    {
        var (rows, columns) = WinogradPlane(c);
        int tiles = Tiles(c);
        return (checked(c.C * rows * columns), checked(Products * c.C * tiles * columns + V), checked(Products * c.M * WinogradWide(c)));
    }

    private void WinogradConv(CodeWriter w, string method, ConvLayer c, Epilogue act)
    {
        bool bias = c.Bias is not null;
        var (rows, columns) = WinogradPlane(c);
        int tiles = Tiles(c), wide = WinogradWide(c), k = c.Window.KW, m = TileRowsOf(c);
        int inSize = c.C * c.Window.H * c.Window.W, outSize = c.M * c.Window.OH * c.Window.OW;
        int plane = c.C * tiles * columns, product = c.M * wide;
        w.Line($"// {k}x{k} convolution by Winograd {WinogradName(c)} along the columns: each tile of {m} output rows is 6 products of transformed rows,");
        w.Line($"// each product a 1x{k} convolution of [{c.M} x {c.C * k}] weights over {c.C} planes of [{tiles} x {columns}] (the pixel GEMM): {Products} products where the direct convolution has {m * k}.");
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y{(act.Residual ? ", ReadOnlySpan<float> residual" : "")}, float[] w{(bias ? ", float[] b" : "")}, Span<float> padded, Span<float> transformed, Span<float> products)");
        w.Line($"const int C = {I(c.C)}, H = {I(c.Window.H)}, W = {I(c.Window.W)}, M = {I(c.M)}, OH = {I(c.Window.OH)}, OW = {I(c.Window.OW)}, Hp = {I(rows)}, Wp = {I(columns)}, PT = {I(c.Window.PadTop)}, PL = {I(c.Window.PadLeft)};");
        w.Line($"const int Tiles = {I(tiles)}, Plane = {I(plane)}, Product = {I(product)}, Wide = {I(wide)};");
        OpenSamples(w, c.Batch);
        w.Line($"ReadOnlySpan<float> xn = {Part("x", inSize, c.Batch)};");
        w.Line($"Span<float> yn = {Part("y", outSize, c.Batch)};");
        w.Line("// The padding border is never written, so it stays zero from allocation.");
        PaddedCopy(w, "Hp", "Wp");
        WinogradInput(w, columns, m);
        w.Line($"for (int xi = 0; xi < {Products}; xi++) {method}_Gemm(transformed.Slice(xi * Plane), products.Slice(xi * Product, Product), w.AsSpan(xi * M * C * {k}, M * C * {k}));");
        WinogradOutput(w, c, act, bias, outSize);
        w.Close();
        w.Close();
        w.Line();
        Gemm(w, method + "_Gemm", c.M, c.C * k, wide, false, Epilogue.Of(Bounds.None), WinogradProduct(c));
    }

    /// <summary>Per channel and tile, the 6 transformed rows from its 6 padded input rows, on vectors along the row.</summary>
    private void WinogradInput(CodeWriter w, int columns, int tileRows)
    {
        w.Line("ref float pr = ref MemoryMarshal.GetReference(padded);");
        w.Line("ref float tr = ref MemoryMarshal.GetReference(transformed);");
        w.Open("for (int c = 0; c < C; c++) for (int t = 0; t < Tiles; t++)");
        w.Line($"ref float d = ref Unsafe.Add(ref pr, (c * Hp + {tileRows} * t) * Wp);");
        w.Line("ref float o = ref Unsafe.Add(ref tr, (c * Tiles + t) * Wp);");
        string Row(int xi, Func<int, string> input) => Combination(Enumerable.Range(0, 6).Select(r => (WinogradB[xi, r], input(r))));
        if (columns >= V)
        {
            void Body(string at)
            {
                w.Line(string.Join(" ", Enumerable.Range(0, 6).Select(r => $"{VT} d{r} = {VS}.LoadUnsafe(ref d, {Nuint(Sum(at, r == 0 ? "" : $"{r} * Wp"))});")));
                for (int xi = 0; xi < Products; xi++)
                    w.Line($"{Row(xi, r => $"d{r}")}.StoreUnsafe(ref o, {Nuint(Sum(at, xi == 0 ? "" : $"{xi} * Plane"))});");
            }
            w.Open($"for (int i = 0; i <= Wp - {V}; i += {V})");
            Body("i");
            w.Close();
            if (columns % V != 0)
            {
                w.Open("// the last vector, overlapping columns already stored with the same values");
                Body($"Wp - {V}");
                w.Close();
            }
        }
        else
        {
            w.Open("for (int i = 0; i < Wp; i++)");
            for (int xi = 0; xi < Products; xi++)
                w.Line($"Unsafe.Add(ref o, {Sum("i", xi == 0 ? "" : $"{xi} * Plane")}) = {Row(xi, r => $"Unsafe.Add(ref d, {Sum("i", r == 0 ? "" : $"{r} * Wp")})")};");
            w.Close();
        }
        w.Close();
    }

    /// <summary>Per output channel and tile, its 4 output rows from the 6 products, then bias, clamp, gate, skip.</summary>
    private void WinogradOutput(CodeWriter w, ConvLayer c, Epilogue act, bool bias, int outSize)
    {
        w.Line("ref float mr = ref MemoryMarshal.GetReference(products);");
        w.Line("ref float yr = ref MemoryMarshal.GetReference(yn);");
        if (act.Residual) w.Line($"ref float sr = ref MemoryMarshal.GetReference({Part("residual", outSize, c.Batch)});");
        w.Open("for (int m = 0; m < M; m++)");
        w.Line(bias ? "float bm = b[m];" : "const float bm = 0f;");
        w.Open("for (int t = 0; t < Tiles; t++)");
        w.Line("ref float q = ref Unsafe.Add(ref mr, m * Wide + t * Wp);");
        int rows = TileRowsOf(c);
        for (int r = 0; r < rows; r++)
        {
            // The last tile's rows past OH are computed but not stored.
            w.Open(r == 0 ? $"// output row {rows}t" : $"if ({rows} * t + {r} < OH) // output row {rows}t + {r}");
            w.Line($"ref float yo = ref Unsafe.Add(ref yr, (m * OH + {Sum($"{rows} * t", r)}) * OW);");
            if (act.Residual) w.Line($"ref float so = ref Unsafe.Add(ref sr, (m * OH + {Sum($"{rows} * t", r)}) * OW);");
            WinogradRow(w, c, act, r);
            w.Close();
        }
        w.Close();
        if (act.Gate is { } gate) w.Line(GatePass(gate, "yn.Slice(m * OH * OW, OH * OW)"));
        w.Close();
    }

    private void WinogradRow(CodeWriter w, ConvLayer c, Epilogue act, int r)
    {
        var a = WinogradA(c.Window.KH);
        string Value(Func<int, string> product) => Combination(Enumerable.Range(0, Products).Select(xi => (a[r, xi], product(xi))));
        if (c.Window.OW >= V)
        {
            string Store(string at)
            {
                string value = VAct(act.Inner, $"{Value(xi => $"{VS}.LoadUnsafe(ref q, {Nuint(Sum(at, xi == 0 ? "" : $"{xi} * Product"))})")} + {VS}.Create(bm)");
                if (act.Residual) value = VAct(act.Outer, $"{value} + {VS}.LoadUnsafe(ref so, {Nuint(at)})");
                return $"({value}).StoreUnsafe(ref yo, {Nuint(at)});";
            }
            w.Line($"for (int ow = 0; ow <= OW - {V}; ow += {V}) {Store("ow")}");
            if (c.Window.OW % V != 0) w.Line($"{Store($"OW - {V}")} // the last vector, overlapping");
        }
        else
        {
            string value = Act(act.Inner, $"{Value(xi => $"Unsafe.Add(ref q, {Sum("ow", xi == 0 ? "" : $"{xi} * Product")})")} + bm");
            if (act.Residual) value = Act(act.Outer, $"{value} + Unsafe.Add(ref so, ow)");
            w.Line($"for (int ow = 0; ow < OW; ow++) Unsafe.Add(ref yo, ow) = {value};");
        }
    }

    /// <summary>The sum of coefficient x term, zeros left out, unit coefficients first: "(d4 + d0 * 4f - d2 * 5f)".</summary>
    private static string Combination(IEnumerable<(float Coefficient, string Term)> terms)
    {
        var parts = new List<string>();
        foreach (var (k, term) in terms.Where(t => t.Coefficient != 0).OrderBy(t => Math.Abs(t.Coefficient) != 1))
        {
            string magnitude = Math.Abs(k) == 1 ? term : $"{term} * {F(Math.Abs(k))}";
            parts.Add(parts.Count == 0 ? (k < 0 ? $"-{magnitude}" : magnitude) : (k < 0 ? $" - {magnitude}" : $" + {magnitude}"));
        }
        return parts.Count == 0 ? "0f" : "(" + string.Concat(parts) + ")";
    }
}
