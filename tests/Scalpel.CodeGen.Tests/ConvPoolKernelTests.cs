using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;
using Xunit;
using static Scalpel.Tests.OnnxGraphs;

namespace Scalpel.Tests;

/// <summary>
/// The conv GEMM and max-pool kernels on single-layer models against ONNX Runtime, at the vector widths of
/// three targets, on shapes chosen for their edges: output channels that leave 1, 2 or 3 rows after the blocks
/// of 4, column counts under one vector and with a partial last vector, dilation, strides 2 and 3, 1x1,
/// and pools whose width is no multiple of half a vector, odd input widths, 3-row windows.
/// </summary>
public sealed class ConvPoolKernelTests
{
    // Inputs in [-1, 1] and weights in [-0.5, 0.5], up to 576 products per output (more with smaller weights, see
    // ConvMatchesOnnxRuntime). Summation order differs from ONNX Runtime's (vector lanes, FMA, channel blocks); the
    // rounding error grows like sqrt(K) * eps * |partial sums|, at most about 1e-5 here, so 1e-4 leaves a margin
    // while any wrong tap, row or column is off by far more.
    internal const float ConvTolerance = 1e-4f;

    /// <summary>C, H, W, M, KH, KW, stride, pad, dilation, group.</summary>
    private static readonly (int[] Shape, string Why)[] ConvShapes =
    [
        ([1, 28, 28, 6, 5, 5, 1, 2, 1, 1], "LeNet's first conv: 2 rows left over"),
        ([3, 9, 11, 7, 3, 3, 1, 1, 1, 1], "3 rows left over, odd width"),
        ([5, 6, 5, 5, 3, 2, 1, 0, 2, 1], "dilation 2, 1 row left over, 8 columns in all"),
        ([4, 10, 10, 9, 3, 3, 2, 1, 1, 1], "stride 2, odd left padding: phase planes, 25 columns"),
        ([16, 28, 28, 32, 3, 3, 2, 0, 1, 1], "stride 2, even padding, vectors of columns split by phase"),
        ([6, 12, 20, 5, 1, 1, 2, 0, 1, 1], "1x1 stride 2 (rescnn's skip): one phase plane of four"),
        ([3, 13, 17, 6, 3, 2, 3, 1, 2, 1], "stride 3 with dilation 2: scalar phase split"),
        ([8, 7, 7, 10, 1, 1, 1, 0, 1, 1], "pointwise, 49 columns"),
        ([2, 3, 3, 4, 2, 2, 1, 0, 1, 1], "4 columns: fewer than one vector"),
        ([12, 13, 13, 20, 5, 5, 1, 2, 1, 1], "13-wide map, 20 channels: a partial channel vector, rows in uneven pixel tiles"),
        ([9, 7, 7, 33, 3, 3, 1, 1, 1, 1], "7x7 map, 33 channels: one channel vector past the pairs"),
        ([4, 5, 6, 16, 3, 3, 1, 3, 1, 1], "padding 3 with a 3x3 kernel: output rows and columns whose taps all fall in the padding"),
        ([8, 30, 31, 32, 3, 3, 1, 1, 1, 1], "30 x 31 map: channel-kernel tiles at both edges around a loop of inner ones, a partial last tile"),
        ([3, 24, 24, 10, 3, 3, 1, 1, 1, 1], "24 columns a row: at 512 bits 8 of them in a half-width vector, rows stored straight"),
        ([3, 35, 36, 8, 3, 3, 1, 1, 1, 1], "36 columns a row, 35 rows: a half-width last vector over an odd number of rows"),
        ([8, 3, 3, 32, 3, 3, 1, 2, 2, 1], "3x3 map, padding 2, dilation 2: every output row has kernel rows past the map"),
        ([8, 33, 33, 16, 3, 3, 1, 6, 6, 1], "dilation 6, padding 6 (atrous): many channel-kernel tiles at the edges"),
        ([2, 20, 20, 5, 3, 3, 1, 1, 1, 1], "20 columns a row: a half-width last vector, overlapping at 512 bits, exact at 256"),
        ([24, 24, 24, 8, 3, 3, 1, 1, 1, 1], "24 columns a row, 216 products per output: at 512 bits wide rows, the half-width vector would cost more"),
        ([8, 15, 15, 17, 3, 3, 2, 1, 1, 1], "stride 2 without phase planes, odd map"),
        ([8, 10, 10, 8, 3, 3, 1, 0, 1, 2], "2 groups of 4 -> 4"),
        ([8, 9, 9, 8, 3, 3, 1, 1, 1, 8], "depthwise 3x3"),
        ([3, 70, 70, 3, 3, 3, 1, 1, 1, 3], "depthwise 3x3, 70 wide (direct): 4 vectors along the last 2 rows, after blocks of 4 rows"),
        ([6, 11, 11, 6, 3, 3, 2, 1, 1, 6], "depthwise 3x3 stride 2"),
        ([4, 14, 14, 4, 5, 5, 1, 2, 1, 4], "depthwise 5x5"),
        ([4, 14, 14, 8, 3, 3, 1, 1, 1, 4], "depthwise with 2 outputs per channel"),
        ([8, 6, 6, 12, 1, 1, 1, 0, 1, 4], "grouped pointwise: 4 GEMMs of 3 x 2"),
        ([3, 40, 40, 3, 3, 3, 1, 1, 1, 3], "depthwise 3x3, 40 wide (direct): blocks of 4 rows, an overlapping tail"),
        ([3, 41, 41, 3, 3, 3, 2, 1, 1, 3], "depthwise 3x3 stride 2 (direct): the even lanes of each load"),
        ([2, 100, 100, 2, 3, 3, 2, 1, 1, 2], "depthwise stride 2 on a plane past L1 (direct, in bands)"),
        ([3, 90, 91, 3, 5, 5, 2, 2, 1, 3], "depthwise 5x5 stride 2 on a plane past L1, odd width, a partial last band (direct, in bands)"),
        ([2, 37, 37, 2, 5, 5, 1, 2, 1, 2], "depthwise 5x5, 37 wide (direct)"),
        ([2, 36, 36, 2, 3, 3, 1, 2, 2, 2], "depthwise 3x3 with dilation 2 (direct)"),
        ([4, 20, 20, 4, 3, 3, 2, 0, 1, 4], "depthwise stride 2 without padding (direct): 9 outputs a row, 8-lane vectors at 512 bits"),
        ([6, 14, 14, 6, 3, 3, 2, 1, 1, 6], "depthwise 3x3 stride 2 on 14x14 (direct): 7 outputs a row in two overlapping 4-lane vectors"),
        ([4, 28, 28, 4, 5, 5, 2, 2, 1, 4], "depthwise 5x5 stride 2 on 28x28 (direct): 14 outputs a row"),
        ([5, 14, 14, 5, 5, 5, 2, 2, 1, 5], "depthwise 5x5 stride 2 on 14x14 (direct): 7 outputs a row, all 7 rows at once, taps from the weights, partial sums"),
        ([3, 29, 29, 3, 5, 5, 1, 2, 1, 3], "depthwise 5x5 on 29x29 (direct): blocks of rows, then rows one at a time in partial sums"),
        ([3, 9, 9, 3, 3, 3, 1, 0, 1, 3], "depthwise 3x3 without padding on 9x9 (direct): 7 outputs a row, not the flat kernel's same-size plane"),
        ([3, 31, 31, 3, 3, 3, 2, 1, 1, 3], "depthwise stride 2 on 31 columns (direct): at 512 bits rows split float by float"),
        ([2, 35, 34, 2, 3, 3, 2, 2, 2, 2], "depthwise stride 2, dilation 2, even padding (direct)"),
        ([5, 7, 7, 5, 3, 3, 1, 1, 1, 5], "depthwise 3x3 on 7x7 (flat): vectors across row ends, the last one overlapping"),
        ([3, 7, 7, 3, 3, 3, 1, 2, 2, 3], "depthwise 3x3 with dilation 2 on 7x7 (flat): column offsets -2 and 2"),
        ([4, 6, 6, 4, 5, 5, 1, 2, 1, 4], "depthwise 5x5 on 6x6 (flat): windows two rows and columns past the border"),
        ([4, 3, 3, 4, 1, 1, 1, 0, 1, 4], "depthwise 1x1 on 3x3 (flat at 128 and 256 bits, the group GEMM at 512): rows under 4 outputs"),
        ([4, 7, 7, 4, 1, 1, 1, 0, 1, 4], "depthwise 1x1 on 7x7 (flat at 512 bits): a kernel one column wide, no column masks"),
        ([3, 14, 14, 3, 5, 5, 1, 2, 1, 3], "depthwise 5x5 on 14x14 (flat at 256 bits, rows at 512 and 128): rows of 14 in 16 lanes"),
        ([3, 10, 13, 3, 3, 3, 1, 1, 1, 3], "depthwise 3x3 on 10x13 (flat at 256 bits, rows at 128 and 512)"),
        ([512, 20, 20, 6, 1, 1, 1, 0, 1, 1], "pointwise over 512 channels: column chunks, the last one partial"),
        ([64, 30, 30, 5, 3, 3, 1, 1, 1, 1], "3x3 over 64 channels on 30x30: column chunks, as output rows stored straight"),
        ([64, 29, 29, 5, 3, 3, 1, 1, 1, 1], "3x3 over 64 channels on 29x29: column chunks of the wide output"),
        ([3, 64, 64, 16, 3, 3, 2, 1, 1, 1], "3x3 stride 2 into 32x32 (a first conv): output rows of whole vectors stored straight"),
        ([4, 34, 34, 10, 5, 5, 1, 0, 1, 1], "5x5 without padding into 30x30: output rows stored straight, an overlapping last vector"),
        ([256, 7, 7, 64, 1, 1, 1, 0, 1, 1], "pointwise 256 -> 64 on 7x7: 64 KB of weights, the channel kernel prefetches the next block's"),
        ([64, 9, 9, 40, 3, 3, 1, 1, 1, 1], "3x3 64 -> 40 on 9x9: the channel kernel prefetches, a partial last tile of a row and a last single channel vector"),
        ([64, 12, 12, 64, 3, 3, 1, 1, 1, 1], "3x3 64 -> 64 on 12x12: Winograd on tiles prefetches the next pair's weights, the last pair the next point's"),
        ([160, 5, 5, 40, 5, 5, 1, 2, 1, 1], "5x5 over 160 channels: the channel kernel sums input channels in blocks"),
        ([8, 11, 10, 12, 3, 3, 1, 1, 1, 1], "3x3 on 11 rows: Winograd's last tile of 4 rows holds 3"),
        ([16, 9, 13, 9, 3, 3, 1, 0, 1, 1], "3x3 without padding: Winograd on 7 x 11 outputs, rows under one 16-lane vector"),
        ([64, 30, 30, 16, 3, 3, 1, 1, 1, 1], "3x3 over 64 channels, 30x30: Winograd's products in column chunks"),
        ([32, 13, 13, 32, 5, 5, 1, 2, 1, 1], "5x5 on 13x13 (ConvNet's second conv): Winograd F(2, 5), a last tile of 1 row"),
        ([8, 6, 9, 20, 5, 5, 1, 0, 1, 1], "5x5 without padding: Winograd on 2 x 5 outputs, rows under one vector"),
        ([16, 20, 20, 12, 3, 3, 1, 2, 2, 1], "3x3 dilation 2: Winograd on tiles of each of 4 phases"),
        ([8, 15, 13, 9, 3, 3, 1, 3, 3, 1], "3x3 dilation 3 on 15 x 13: phases of 5 x 5 and 5 x 4 outputs, tiles past a phase's last output"),
        ([12, 11, 11, 17, 5, 5, 1, 4, 2, 1], "5x5 dilation 2 on 11 x 11: phases of 6 and 5 outputs a side"),
    ];

    /// <summary>
    /// Shapes Winograd takes when forced: 3x3 (F(4, 3), 4 output rows or more) or 5x5 (F(2, 5), 2 or more), stride 1,
    /// no dilation or groups, 8 channels or more.
    /// </summary>
    private static bool WinogradShape(int[] s) =>
        (s[4] is 3 or 5) && s[5] == s[4] && s[6] == 1 && s[8] == 1 && s[9] == 1 && s[0] >= 8 && s[3] >= 8 && s[1] + 2 * s[7] - s[4] + 1 >= 7 - s[4];

    /// <summary>Shapes Winograd on tiles takes when forced: 3x3 or 5x5, stride 1, the same dilation both ways, no groups, 8 channels or more.</summary>
    private static bool WinogradTilesShape(int[] s) => (s[4] is 3 or 5) && s[5] == s[4] && s[6] == 1 && s[9] == 1 && s[0] >= 8 && s[3] >= 8;

    public static TheoryData<string, ConvKernel, int> ConvCases()
    {
        var data = new TheoryData<string, ConvKernel, int>();
        foreach (var target in new[] { "x64-sse", "x64-avx2", "x64-avx512" })
            for (int i = 0; i < ConvShapes.Length; i++)
            {
                data.Add(target, ConvKernel.Pixels, i);
                if (ConvShapes[i].Shape[9] == 1) data.Add(target, ConvKernel.Channels, i);
                if (WinogradShape(ConvShapes[i].Shape)) data.Add(target, ConvKernel.Winograd, i);
                if (WinogradTilesShape(ConvShapes[i].Shape)) data.Add(target, ConvKernel.WinogradTiles, i);
            }
        return data;
    }

    [Theory]
    [MemberData(nameof(ConvCases))]
    public void ConvMatchesOnnxRuntime(string target, ConvKernel kernel, int index)
    {
        var (shape, why) = ConvShapes[index];
        var (c, h, w, m, kh, kw, stride, pad, dilation, group) = (shape[0], shape[1], shape[2], shape[3], shape[4], shape[5], shape[6], shape[7], shape[8], shape[9]);
        var rng = new Random(c * 1000 + m);
        // Past 576 products per output the weights shrink with 1 / sqrt(K), so partial sums, and with them the
        // rounding error the tolerance allows for, stay as large as at 576.
        var weight = Random(rng, m * c / group * kh * kw, 0.5f * MathF.Min(1f, MathF.Sqrt(576f / (c / group * kh * kw))));
        var bias = Random(rng, m, 0.5f);
        int oh = (h + 2 * pad - dilation * (kh - 1) - 1) / stride + 1, ow = (w + 2 * pad - dilation * (kw - 1) - 1) / stride + 1;
        var conv = new NodeProto
        {
            OpType = "Conv", Name = "conv", Input = { "x", "W", "B" }, Output = { "c" },
            Attribute =
            {
                Ints("kernel_shape", kh, kw), Ints("strides", stride, stride), Ints("pads", pad, pad, pad, pad), Ints("dilations", dilation, dilation),
                Int("group", group),
            },
        };
        var relu = new NodeProto { OpType = "Relu", Name = "relu", Input = { "c" }, Output = { "y" } };
        var model = Model([conv, relu], [Floats("W", weight, m, c / group, kh, kw), Floats("B", bias, m)], [c, h, w], [m, oh, ow]);

        var (actual, expected, source) = RunBoth(model, CodeTarget.Resolve(target) with { ConvKernel = kernel }, c * h * w, rng);
        Assert.Equal(kernel == ConvKernel.Channels, source.Contains("vectorised across output channels", StringComparison.Ordinal));
        Assert.Equal(kernel == ConvKernel.Winograd, source.Contains("by Winograd F(", StringComparison.Ordinal));
        Assert.Equal(kernel == ConvKernel.WinogradTiles, source.Contains("by two-dimensional Winograd F(", StringComparison.Ordinal));
        if (kernel == ConvKernel.Pixels)
            Assert.Equal(why.Contains("column chunks", StringComparison.Ordinal), source.Contains("columns in chunks", StringComparison.Ordinal) || source.Contains("output rows in chunks", StringComparison.Ordinal));
        // The row kernel needs a row of at least one vector of outputs; the flat-plane kernel takes same-size
        // stride-1 depthwise whose rows are under two vectors.
        int lanes = CodeTarget.Resolve(target).Lanes;
        // The pixel GEMM of a padded conv stores output rows straight, rather than computing wide rows and compacting
        // them, when their whole vectors fit the phase plane's width. A row's last columns go in a half-width vector
        // where they fit one (256 bits and up), else in a whole one.
        bool halfTail = lanes >= 8 && ow % lanes != 0 && ow % lanes <= lanes / 2;
        // Past the plane width, a half-width last vector only where its cost (0.7 of a vector) beats the wide rows' and
        // their compaction (half an FMA per output), in vector FMAs per row.
        int wq = ow + (kw - 1) * dilation / stride, k = c / group * kh * kw;
        bool straight = ow >= lanes && ((ow + lanes - 1) / lanes * lanes <= wq || halfTail && (ow / lanes + 0.7) * k < (double)wq / lanes * k + 0.5 * ow);
        if (source.Contains("so no im2col", StringComparison.Ordinal))
        {
            Assert.Equal(straight, source.Contains("stored straight into the output", StringComparison.Ordinal));
            Assert.Equal(straight && halfTail, source.Contains($"columns: a {lanes / 2}-lane vector", StringComparison.Ordinal));
        }
        // Where rows are over half a vector, only if the row kernel's taps would not fit the registers beside its sums
        // (8 below 16-lane rows, 4 at 16 lanes) in 16 registers below 512 bits, 32 at 512.
        int rowLanes = lanes;
        while (rowLanes > 4 && rowLanes / 2 >= ow) rowLanes /= 2;
        bool tapsFit = kh * kw + (rowLanes >= 16 ? 4 : 8) + 2 <= (lanes >= 16 ? 32 : 16);
        bool flat = stride == 1 && oh == h && ow == w && w < 2 * lanes && h * w >= lanes && (2 * w <= lanes || ow < 4 || !tapsFit);
        if (why.Contains("(direct", StringComparison.Ordinal))
            Assert.Equal(ow >= 4 && !flat, source.Contains("Depthwise convolution, one channel at a time", StringComparison.Ordinal));
        if (why.Contains("(flat", StringComparison.Ordinal))
            Assert.Equal(flat, source.Contains("as one flat row", StringComparison.Ordinal));
        if (why.Contains("in bands", StringComparison.Ordinal))
            Assert.Contains("padded rows they read stay in L1", source, StringComparison.Ordinal);
        // The channel kernel reads the input where it is, leaving out the taps in the padding (edge tiles, kernel rows per output row).
        if (kernel == ConvKernel.Channels && group == 1)
        {
            Assert.DoesNotContain("zero-padded input copy", source, StringComparison.Ordinal);
            Assert.Equal(pad > 0, source.Contains("without their taps in the padding columns", StringComparison.Ordinal));
        }
        if (kernel == ConvKernel.Channels && target == "x64-avx512") Assert.Equal(why.Contains("in blocks", StringComparison.Ordinal), source.Contains("input channels in blocks", StringComparison.Ordinal));
        // The channel kernel and Winograd on tiles prefetch the next block's weights where they are 64 KB or more.
        if (kernel is ConvKernel.Channels or ConvKernel.WinogradTiles && why.Contains("prefetches", StringComparison.Ordinal)) Assert.Contains("Prefetch(ref", source, StringComparison.Ordinal);
        if (kernel == ConvKernel.Channels && (m + lanes - 1) / lanes * lanes * c * kh * kw * sizeof(float) < 64 * 1024) Assert.DoesNotContain("Prefetch(ref", source, StringComparison.Ordinal);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= ConvTolerance, $"{target} {kernel} ({why}): element {i} is {actual[i]}, ONNX Runtime {expected[i]}");
    }

    [Theory]
    [InlineData("x64-avx2", ConvKernel.Auto)]
    [InlineData("x64-avx512", ConvKernel.Auto)]
    [InlineData("x64-sse", ConvKernel.Pixels)]
    public void KernelChoiceNamesTheKernelTheCodeRuns(string target, ConvKernel kernel)
    {
        // The report's kernel table comes from the same decisions the emitter takes: for every shape, the choice
        // it names must be the kernel whose code is emitted, with a reason.
        foreach (var (shape, why) in ConvShapes)
        {
            var (c, h, w, m, kh, kw, stride, pad, dilation, group) = (shape[0], shape[1], shape[2], shape[3], shape[4], shape[5], shape[6], shape[7], shape[8], shape[9]);
            int oh = (h + 2 * pad - dilation * (kh - 1) - 1) / stride + 1, ow = (w + 2 * pad - dilation * (kw - 1) - 1) / stride + 1;
            var conv = new NodeProto
            {
                OpType = "Conv", Name = "conv", Input = { "x", "W" }, Output = { "y" },
                Attribute = { Ints("kernel_shape", kh, kw), Ints("strides", stride, stride), Ints("pads", pad, pad, pad, pad), Ints("dilations", dilation, dilation), Int("group", group) },
            };
            var model = Model([conv], [Floats("W", new float[m * c / group * kh * kw], m, c / group, kh, kw)], [c, h, w], [m, oh, ow]);
            var code = CSharpEmitter.Emit(GraphAnalyzer.Analyze(model), new EmitOptions("K", "M", CodeTarget.Resolve(target) with { ConvKernel = kernel }, "kernel"));
            var choice = Assert.Single(code.Kernels);
            Assert.Equal("conv", choice.Layer);
            Assert.False(string.IsNullOrWhiteSpace(choice.Why), why);
            Assert.Equal(choice.Kernel.StartsWith("output-channel vectors", StringComparison.Ordinal), code.Source.Contains("vectorised across output channels", StringComparison.Ordinal));
            Assert.Equal(choice.Kernel.StartsWith("depthwise, direct", StringComparison.Ordinal), code.Source.Contains("Depthwise convolution, one channel at a time", StringComparison.Ordinal));
            Assert.Equal(choice.Kernel == "depthwise, flat plane", code.Source.Contains("as one flat row", StringComparison.Ordinal));
            Assert.Equal(group == 1 && code.Source.Contains("so no im2col", StringComparison.Ordinal), choice.Kernel == "pixel GEMM over a zero-padded copy");
            Assert.Equal(kernel != ConvKernel.Auto && group == 1, choice.Why.StartsWith("forced by the target", StringComparison.Ordinal));
        }
    }

    /// <summary>
    /// Winograd on tiles copies each input into one pixel-major scratch that all such convs share: each must zero the
    /// padding and the lanes past its channels that another conv filled. Here a conv without padding fills the
    /// scratch, the next one pads by 1 and the last, over 12 channels, by 2 with a 5x5 kernel.
    /// </summary>
    [Theory]
    [InlineData("x64-sse")]
    [InlineData("x64-avx2")]
    [InlineData("x64-avx512")]
    public void WinogradTilesZeroThePaddingOfTheirSharedScratch(string target)
    {
        var rng = new Random(11);
        NodeProto Conv(string name, string input, string output, int k, int pad) => new()
        {
            OpType = "Conv", Name = name, Input = { input, name + "W", name + "B" }, Output = { output },
            Attribute = { Ints("kernel_shape", k, k), Ints("pads", pad, pad, pad, pad) },
        };
        var nodes = new[]
        {
            Conv("a", "x", "a", 3, 0), new NodeProto { OpType = "Relu", Name = "ra", Input = { "a" }, Output = { "ar" } },
            Conv("b", "ar", "b", 3, 1), new NodeProto { OpType = "Relu", Name = "rb", Input = { "b" }, Output = { "br" } },
            Conv("c", "br", "y", 5, 2),
        };
        // Weights scaled with 1 / sqrt(K), as in ConvMatchesOnnxRuntime, so the sums stay of order 1.
        var initializers = new[]
        {
            Floats("aW", Random(rng, 16 * 16 * 9, 0.5f), 16, 16, 3, 3), Floats("aB", Random(rng, 16, 0.5f), 16),
            Floats("bW", Random(rng, 12 * 16 * 9, 0.5f), 12, 16, 3, 3), Floats("bB", Random(rng, 12, 0.5f), 12),
            Floats("cW", Random(rng, 10 * 12 * 25, 0.5f), 10, 12, 5, 5), Floats("cB", Random(rng, 10, 0.5f), 10),
        };
        var model = Model(nodes, initializers, [16, 12, 12], [10, 10, 10]);
        var (actual, expected, source) = RunBoth(model, CodeTarget.Resolve(target) with { ConvKernel = ConvKernel.WinogradTiles }, 16 * 12 * 12, rng);
        Assert.Equal(3, System.Text.RegularExpressions.Regex.Matches(source, "by two-dimensional Winograd F\\(").Count);
        // Three stacked convs, each up to 300 products of order-1 values: the tolerance grows with the magnitudes.
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= ConvTolerance * Math.Max(1, Math.Abs(expected[i])), $"{target}: element {i} is {actual[i]}, ONNX Runtime {expected[i]}");
    }

    public static TheoryData<string, ConvKernel, string> ClipCases()
    {
        var data = new TheoryData<string, ConvKernel, string>();
        foreach (var target in new[] { "x64-sse", "x64-avx2", "x64-avx512" })
            foreach (var kernel in new[] { ConvKernel.Pixels, ConvKernel.Channels, ConvKernel.Winograd, ConvKernel.WinogradTiles })
                foreach (var form in new[] { "clip", "relu then clip", "clip with another reader" })
                    data.Add(target, kernel, form);
        return data;
    }

    /// <summary>A Clip after a conv (MobileNet's Relu6) is folded into the conv's epilogue unless the conv's output has another reader.</summary>
    [Theory]
    [MemberData(nameof(ClipCases))]
    public void ClipAfterConvMatchesOnnxRuntime(string target, ConvKernel kernel, string form)
    {
        const int c = 12, h = 9, w = 9, m = 20;
        var rng = new Random(7);
        var conv = new NodeProto
        {
            OpType = "Conv", Name = "conv", Input = { "x", "W", "B" }, Output = { "c" },
            Attribute = { Ints("kernel_shape", 3, 3), Ints("pads", 1, 1, 1, 1) },
        };
        var nodes = new List<NodeProto> { conv };
        string clipInput = "c";
        if (form == "relu then clip")
        {
            nodes.Add(new NodeProto { OpType = "Relu", Name = "relu", Input = { "c" }, Output = { "r" } });
            clipInput = "r";
        }
        bool shared = form == "clip with another reader";
        nodes.Add(new NodeProto { OpType = "Clip", Name = "clip", Input = { clipInput, "lo", "hi" }, Output = { shared ? "k" : "y" } });
        if (shared) nodes.Add(new NodeProto { OpType = "Add", Name = "add", Input = { "c", "k" }, Output = { "y" } });
        float lo = form == "relu then clip" ? -1f : -0.4f, hi = 0.3f;
        var model = Model([.. nodes], [Floats("W", Random(rng, m * c * 9, 0.5f), m, c, 3, 3), Floats("B", Random(rng, m, 0.5f), m), Floats("lo", [lo]), Floats("hi", [hi])],
            [c, h, w], [m, h, w]);

        var (actual, expected, source) = RunBoth(model, CodeTarget.Resolve(target) with { ConvKernel = kernel }, c * h * w, rng);
        Assert.Equal(!shared, source.Contains("folded into the epilogue", StringComparison.Ordinal));
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= ConvTolerance, $"{target} {kernel} {form}: element {i} is {actual[i]}, ONNX Runtime {expected[i]}");
    }

    public static TheoryData<string, ConvKernel, string> ResidualCases()
    {
        var data = new TheoryData<string, ConvKernel, string>();
        foreach (var target in new[] { "x64-sse", "x64-avx2", "x64-avx512" })
            foreach (var kernel in new[] { ConvKernel.Pixels, ConvKernel.Channels, ConvKernel.Winograd, ConvKernel.WinogradTiles })
                foreach (var form in new[] { "3x3 + skip, relu", "1x1 + skip", "3x3 stride 2 + 1x1 stride 2 skip, relu", "clip, + skip, clip" })
                    data.Add(target, kernel, form);
        return data;
    }

    /// <summary>
    /// A skip connection's Add (and a Relu or Clip after it) is folded into the epilogue of the conv that runs last
    /// of the two producers, whichever kernel computes it.
    /// </summary>
    [Theory]
    [MemberData(nameof(ResidualCases))]
    public void ResidualAddMatchesOnnxRuntime(string target, ConvKernel kernel, string form)
    {
        const int c = 12, h = 11, w = 11, m = 20;
        bool strided = form.Contains("stride 2", StringComparison.Ordinal), pointwise = form.StartsWith("1x1", StringComparison.Ordinal);
        int k = pointwise ? 1 : 3, stride = strided ? 2 : 1, oh = strided ? 6 : 11;
        var rng = new Random(11);
        NodeProto Conv(string name, string input, string weight, int kernelSize, int s) => new()
        {
            OpType = "Conv", Name = name, Input = { input, weight, weight + "b" }, Output = { name },
            Attribute = { Ints("kernel_shape", kernelSize, kernelSize), Ints("strides", s, s), Ints("pads", Enumerable.Repeat((long)(kernelSize / 2), 4).ToArray()) },
        };
        var initializers = new List<TensorProto> { Floats("W1", Random(rng, m * c * 9, 0.3f), m, c, 3, 3), Floats("W1b", Random(rng, m, 0.3f), m) };
        if (strided) initializers.AddRange([Floats("W3", Random(rng, m * c, 0.3f), m, c, 1, 1), Floats("W3b", Random(rng, m, 0.3f), m)]);
        else initializers.AddRange([Floats("W2", Random(rng, m * m * k * k, 0.3f), m, m, k, k), Floats("W2b", Random(rng, m, 0.3f), m)]);
        if (form.Contains("clip", StringComparison.Ordinal)) initializers.AddRange([Floats("lo", [-0.2f]), Floats("hi", [0.5f])]);
        var nodes = new List<NodeProto>();
        string main, skip;
        if (strided)
        {
            // The main path's conv runs first, the skip's 1x1 stride-2 conv last: the Add folds into the skip conv.
            nodes.Add(Conv("a", "x", "W1", 3, 2));
            nodes.Add(Conv("s", "x", "W3", 1, 2));
            (main, skip) = ("a", "s");
        }
        else
        {
            nodes.Add(Conv("a", "x", "W1", 3, 1));
            nodes.Add(Conv("b", "a", "W2", k, 1));
            main = "b";
            skip = "a";
            if (form.StartsWith("clip", StringComparison.Ordinal))
            {
                nodes.Add(new NodeProto { OpType = "Clip", Name = "clip1", Input = { "b", "lo", "hi" }, Output = { "bc" } });
                main = "bc";
            }
        }
        bool after = form.EndsWith("relu", StringComparison.Ordinal) || form.EndsWith("clip", StringComparison.Ordinal);
        nodes.Add(new NodeProto { OpType = "Add", Name = "add", Input = { main, skip }, Output = { after ? "sum" : "y" } });
        if (form.EndsWith("relu", StringComparison.Ordinal)) nodes.Add(new NodeProto { OpType = "Relu", Name = "relu", Input = { "sum" }, Output = { "y" } });
        if (form.EndsWith("clip", StringComparison.Ordinal)) nodes.Add(new NodeProto { OpType = "Clip", Name = "clip2", Input = { "sum", "lo", "hi" }, Output = { "y" } });
        var model = Model([.. nodes], [.. initializers], [c, h, w], [m, oh, oh]);

        var (actual, expected, source) = RunBoth(model, CodeTarget.Resolve(target) with { ConvKernel = kernel }, c * h * w, rng);
        Assert.Contains("'add'", source);
        Assert.Matches("Add 'add'.*folded into the epilogue of L01", source);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= ConvTolerance, $"{target} {kernel} {form}: element {i} is {actual[i]}, ONNX Runtime {expected[i]}");
    }

    /// <summary>
    /// A squeeze-and-excitation block (EfficientNet's): the channel scaling Mul writes over the feature map it reads
    /// for the last time, and the results match ONNX Runtime at every width and at batches past one sample.
    /// </summary>
    [Theory]
    [InlineData("x64-sse", 1)]
    [InlineData("x64-avx2", 5)]
    [InlineData("x64-avx512", 3)]
    public void ElementWiseLayersWriteOverAnInputTheyReadLast(string target, int batch)
    {
        var rng = new Random(17);
        var nodes = new[]
        {
            new NodeProto { OpType = "Conv", Name = "expand", Input = { "x", "W1", "B1" }, Output = { "c" }, Attribute = { Ints("kernel_shape", 3, 3), Ints("pads", 1, 1, 1, 1) } },
            new NodeProto { OpType = "GlobalAveragePool", Name = "squeeze", Input = { "c" }, Output = { "g" } },
            new NodeProto { OpType = "Conv", Name = "excite", Input = { "g", "W2", "B2" }, Output = { "e" }, Attribute = { Ints("kernel_shape", 1, 1) } },
            new NodeProto { OpType = "Sigmoid", Name = "gate", Input = { "e" }, Output = { "s" } },
            new NodeProto { OpType = "Mul", Name = "scale", Input = { "c", "s" }, Output = { "m" } },
            new NodeProto { OpType = "Conv", Name = "project", Input = { "m", "W3", "B3" }, Output = { "y" }, Attribute = { Ints("kernel_shape", 1, 1) } },
        };
        var initializers = new[]
        {
            Floats("W1", Random(rng, 16 * 8 * 9, 0.5f), 16, 8, 3, 3), Floats("B1", Random(rng, 16, 0.5f), 16),
            Floats("W2", Random(rng, 16 * 16, 0.5f), 16, 16, 1, 1), Floats("B2", Random(rng, 16, 0.5f), 16),
            Floats("W3", Random(rng, 8 * 16, 0.5f), 8, 16, 1, 1), Floats("B3", Random(rng, 8, 0.5f), 8),
        };
        var model = Model(nodes, initializers, [8, 10, 10], [8, 10, 10]);
        var (actual, expected, source) = RunBoth(model, CodeTarget.Resolve(target), 8 * 10 * 10, rng, batch);
        // The Mul's first operand and its output are the same buffer.
        Assert.Matches(@"_Mul\((_a\d+)\.AsSpan\([^)]*\), [^;]*, \1\.AsSpan\(", source);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= ConvTolerance * Math.Max(1, Math.Abs(expected[i])), $"{target}: element {i} is {actual[i]}, ONNX Runtime {expected[i]}");
    }

    /// <summary>
    /// Layer outputs share buffers once their readers have run: a chain of five convs needs two, a skip
    /// connection over three convs keeps its tensor alive (a third buffer) until the Add reads it.
    /// </summary>
    [Theory]
    [InlineData(false, 2)]
    [InlineData(true, 3)]
    public void LayerOutputsShareBuffers(bool skip, int buffers)
    {
        const int c = 8, h = 10;
        var rng = new Random(5);
        var nodes = new List<NodeProto>();
        var initializers = new List<TensorProto>();
        string previous = "x";
        for (int i = 0; i < 5; i++)
        {
            nodes.Add(new NodeProto
            {
                OpType = "Conv", Name = $"conv{i}", Input = { previous, $"W{i}" }, Output = { $"c{i}" },
                Attribute = { Ints("kernel_shape", 3, 3), Ints("pads", 1, 1, 1, 1) },
            });
            nodes.Add(new NodeProto { OpType = "Relu", Name = $"relu{i}", Input = { $"c{i}" }, Output = { $"r{i}" } });
            initializers.Add(Floats($"W{i}", Random(rng, c * c * 9, 0.3f), c, c, 3, 3));
            previous = $"r{i}";
        }
        // The skip from the first conv's output to an Add after the last, with a Mul so the Add is no conv epilogue.
        if (skip)
        {
            nodes.Add(new NodeProto { OpType = "Mul", Name = "mul", Input = { previous, "half" }, Output = { "m" } });
            nodes.Add(new NodeProto { OpType = "Add", Name = "add", Input = { "m", "r0" }, Output = { "y" } });
            initializers.Add(Floats("half", [0.5f]));
        }
        else nodes[^1].Output[0] = "y";
        var model = Model([.. nodes], [.. initializers], [c, h, h], [c, h, h]);
        var (actual, expected, source) = RunBoth(model, CodeTarget.Resolve("x64-avx2"), c * h * h, rng);
        Assert.Equal(buffers, System.Text.RegularExpressions.Regex.Matches(source, @"float\[\] _a\d+ = new").Count);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= ConvTolerance, $"element {i} is {actual[i]}, ONNX Runtime {expected[i]}");
    }

    [Theory]
    [InlineData("x64-avx512", ConvKernel.Channels, 0, 1)]
    [InlineData("x64-avx512", ConvKernel.Channels, 1, 0)]
    [InlineData("x64-avx2", ConvKernel.Channels, 0, 1)]
    [InlineData("x64-sse", ConvKernel.Channels, 2, 0)]
    [InlineData("x64-avx512", ConvKernel.Pixels, 0, 1)]
    [InlineData("x64-avx2", ConvKernel.Pixels, 2, 0)]
    public void AsymmetricPaddingMatchesOnnxRuntime(string target, ConvKernel kernel, int begin, int end)
    {
        // Padding only at the start (top and left) or only at the end (bottom and right, as SAME_UPPER gives for an even
        // map and stride 2): the channel kernel's edge tiles then sit at one side of the row, and rows meet the map's
        // edge at one end only.
        const int c = 8, h = 10, w = 12, m = 20;
        var rng = new Random(begin * 10 + end);
        int oh = (h + begin + end - 3) / 2 + 1, ow = (w + begin + end - 3) / 2 + 1;
        var conv = new NodeProto
        {
            OpType = "Conv", Name = "conv", Input = { "x", "W", "B" }, Output = { "y" },
            Attribute = { Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", begin, begin, end, end) },
        };
        var model = Model([conv], [Floats("W", Random(rng, m * c * 9, 0.5f), m, c, 3, 3), Floats("B", Random(rng, m, 0.5f), m)], [c, h, w], [m, oh, ow]);
        var (actual, expected, source) = RunBoth(model, CodeTarget.Resolve(target) with { ConvKernel = kernel }, c * h * w, rng);
        Assert.Equal(kernel == ConvKernel.Channels, source.Contains("vectorised across output channels", StringComparison.Ordinal));
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= ConvTolerance, $"{target} {kernel} pads {begin}/{end}: element {i} is {actual[i]}, ONNX Runtime {expected[i]}");
    }

    [Fact]
    public void DepthwiseRowsKeepEnoughIndependentSums()
    {
        static string Source(int c, int h, int k, int stride, string target)
        {
            var conv = new NodeProto
            {
                OpType = "Conv", Name = "conv", Input = { "x", "W" }, Output = { "y" },
                Attribute = { Ints("kernel_shape", k, k), Ints("pads", k / 2, k / 2, k / 2, k / 2), Ints("strides", stride, stride), Int("group", c) },
            };
            int o = (h + 2 * (k / 2) - k) / stride + 1;
            var graph = GraphAnalyzer.Analyze(Model([conv], [Floats("W", new float[c * k * k], c, 1, k, k)], [c, h, h], [c, o, o]));
            return CSharpEmitter.Emit(graph, new EmitOptions("Conv", "M", CodeTarget.Resolve(target), "conv")).Source;
        }
        // 8-lane rows of 7 outputs: 25 taps and 8 sums do not fit 32 registers, so the taps come from the weights and
        // the 7 rows keep 14 sums (measured 34 µs against 47 for 4 rows of one sum each, 672 channels).
        Assert.Contains("its 25 taps broadcast from the weights as used, one 8-lane vector per row of 7 outputs, its last lanes running into the next row, 7 rows at a time, 2 partial sums per vector.",
            Source(8, 14, 5, 2, "x64-avx512"));
        // 16-lane rows: four sums fill a CPU that runs a 512-bit FMA as two halves; the taps stay in registers.
        Assert.Contains("its 9 taps in registers, 16 outputs per vector, 4 output rows at a time, stored straight",
            Source(8, 56, 3, 1, "x64-avx512"));
        // 16 registers: 9 taps and 8 sums do not fit.
        Assert.Contains("its 9 taps broadcast from the weights as used, 8 outputs per vector, 8 output rows at a time, stored straight",
            Source(8, 56, 3, 1, "x64-avx2"));
    }

    [Fact]
    public void ChannelKernelIsChosenWhereRowsWasteLanes()
    {
        // 64 -> 64 channels, 3x3 stride 2 into a 7x7 map: 576 products per output, and 7-wide rows fill few pixel lanes.
        var conv = new NodeProto
        {
            OpType = "Conv", Name = "conv", Input = { "x", "W" }, Output = { "y" },
            Attribute = { Ints("kernel_shape", 3, 3), Ints("pads", 1, 1, 1, 1), Ints("strides", 2, 2) },
        };
        var small = GraphAnalyzer.Analyze(Model([conv], [Floats("W", new float[64 * 64 * 9], 64, 64, 3, 3)], [64, 14, 14], [64, 7, 7]));
        var code = CSharpEmitter.Emit(small, new EmitOptions("Conv", "M", CodeTarget.Resolve("x64-avx512"), "conv"));
        Assert.Contains("vectorised across output channels", code.Source);
        // Stride 2 on wider maps, where the counts are close: 64 -> 128 on 56x56 counts 0.97 of the pixel GEMM's FMAs
        // for channels and measured 0.94 (1062 against 1126 µs); 24 -> 40 5x5 counts 1.12 and measured 1.09.
        var s2 = GraphAnalyzer.Analyze(Model([conv], [Floats("W", new float[128 * 64 * 9], 128, 64, 3, 3)], [64, 56, 56], [128, 28, 28]));
        Assert.Contains("vectorised across output channels", CSharpEmitter.Emit(s2, new EmitOptions("Conv", "M", CodeTarget.Resolve("x64-avx512"), "conv")).Source);
        var s2k5 = new NodeProto
        {
            OpType = "Conv", Name = "conv", Input = { "x", "W" }, Output = { "y" },
            Attribute = { Ints("kernel_shape", 5, 5), Ints("pads", 2, 2, 2, 2), Ints("strides", 2, 2) },
        };
        var few = GraphAnalyzer.Analyze(Model([s2k5], [Floats("W", new float[40 * 24 * 25], 40, 24, 5, 5)], [24, 56, 56], [40, 28, 28]));
        Assert.DoesNotContain("vectorised across output channels", CSharpEmitter.Emit(few, new EmitOptions("Conv", "M", CodeTarget.Resolve("x64-avx512"), "conv")).Source);
        // At stride 1, Winograd on 4x4 tiles does a quarter of the multiply-adds, vectorised across channels like the channel kernel
        // (measured 16.7 µs against 32.6 for the channel kernel and 31.2 for Winograd along columns).
        var stride1 = new NodeProto
        {
            OpType = "Conv", Name = "conv", Input = { "x", "W" }, Output = { "y" },
            Attribute = { Ints("kernel_shape", 3, 3), Ints("pads", 1, 1, 1, 1) },
        };
        var tiles = GraphAnalyzer.Analyze(Model([stride1], [Floats("W", new float[64 * 64 * 9], 64, 64, 3, 3)], [64, 7, 7], [64, 7, 7]));
        Assert.Contains("by two-dimensional Winograd F(4x4, 3x3)", CSharpEmitter.Emit(tiles, new EmitOptions("Conv", "M", CodeTarget.Resolve("x64-avx512"), "conv")).Source);
        // 512 -> 512 on 7x7: the tiles' 37.7 MB of transformed weights would come from memory on every call.
        var wide512 = GraphAnalyzer.Analyze(Model([stride1], [Floats("W", new float[512 * 512 * 9], 512, 512, 3, 3)], [512, 7, 7], [512, 7, 7]));
        Assert.DoesNotContain("by two-dimensional Winograd", CSharpEmitter.Emit(wide512, new EmitOptions("Conv", "M", CodeTarget.Resolve("x64-avx512"), "conv")).Source);
        // One input channel: 25 products per output do not pay for the transposing store.
        var first = new NodeProto
        {
            OpType = "Conv", Name = "conv", Input = { "x", "W" }, Output = { "y" },
            Attribute = { Ints("kernel_shape", 5, 5), Ints("pads", 2, 2, 2, 2) },
        };
        var lenet = GraphAnalyzer.Analyze(Model([first], [Floats("W", new float[6 * 25], 6, 1, 5, 5)], [1, 28, 28], [6, 28, 28]));
        Assert.DoesNotContain("vectorised across output channels", CSharpEmitter.Emit(lenet, new EmitOptions("Conv", "M", CodeTarget.Resolve("x64-avx512"), "conv")).Source);
        // 1x1 on a 28x28 map: 784 pixels fill whole vectors, the pixel GEMM wastes nothing and needs no transposing store.
        var pointwise = new NodeProto { OpType = "Conv", Name = "conv", Input = { "x", "W" }, Output = { "y" }, Attribute = { Ints("kernel_shape", 1, 1) } };
        var wide = GraphAnalyzer.Analyze(Model([pointwise], [Floats("W", new float[128 * 128], 128, 128, 1, 1)], [128, 28, 28], [128, 28, 28]));
        Assert.DoesNotContain("vectorised across output channels", CSharpEmitter.Emit(wide, new EmitOptions("Conv", "M", CodeTarget.Resolve("x64-avx512"), "conv")).Source);
    }

    public static TheoryData<string, int, int, int, int, int, int> PoolCases()
    {
        var data = new TheoryData<string, int, int, int, int, int, int>();
        foreach (var target in new[] { "x64-sse", "x64-avx2", "x64-avx512" })
        {
            // target, C, H, W, KH, strideH, strideW (all 2 wide)
            data.Add(target, 6, 28, 28, 2, 2, 2);   // LeNet's first pool
            data.Add(target, 16, 10, 10, 2, 2, 2);  // LeNet's second pool: 5 outputs a row
            data.Add(target, 3, 11, 13, 3, 2, 2);   // 3-row window, odd width (the last column is never read)
            data.Add(target, 2, 9, 34, 2, 1, 2);    // overlapping rows
            data.Add(target, 1, 4, 5, 2, 2, 2);     // 2 outputs a row: fewer than half a vector
            data.Add(target, 2, 8, 8, 2, 2, 1);     // horizontal stride 1: the general kernel
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(PoolCases))]
    public void MaxPoolMatchesOnnxRuntime(string target, int c, int h, int w, int kh, int sh, int sw)
    {
        int oh = (h - kh) / sh + 1, ow = (w - 2) / sw + 1;
        var pool = new NodeProto
        {
            OpType = "MaxPool", Name = "pool", Input = { "x" }, Output = { "y" },
            Attribute = { Ints("kernel_shape", kh, 2), Ints("strides", sh, sw) },
        };
        var model = Model([pool], [], [c, h, w], [c, oh, ow]);

        var (actual, expected, _) = RunBoth(model, CodeTarget.Resolve(target), c * h * w, new Random(h * 100 + w));
        Assert.Equal(expected, actual); // a max is exact
    }

    /// <summary>Max (1) or average (0), C, H, W, kernel, stride, pad, ceil_mode, count_include_pad, dilation.</summary>
    private static readonly (int[] Pool, string Why)[] PoolShapes =
    [
        ([1, 4, 56, 56, 3, 2, 1, 0, 0, 1], "ResNet's 3x3 stride-2 max pool with padding: scalar edges, vectors of even lanes"),
        ([1, 3, 56, 56, 3, 2, 0, 1, 0, 1], "SqueezeNet's ceil-mode max pool: the last window reaches past the input"),
        ([0, 3, 26, 26, 3, 2, 0, 0, 0, 1], "ConvNet's 3x3 stride-2 average pool"),
        ([0, 2, 30, 30, 3, 2, 1, 0, 0, 1], "average pool excluding the padding from the count"),
        ([0, 2, 30, 30, 3, 2, 1, 0, 1, 1], "average pool counting the padding"),
        ([0, 2, 31, 31, 3, 2, 1, 1, 1, 1], "ceil mode counting the padding, but not windows past it"),
        ([1, 2, 40, 40, 3, 1, 1, 0, 0, 1], "stride 1: full vectors"),
        ([1, 2, 40, 44, 5, 1, 2, 0, 0, 2], "stride 1 with dilation 2"),
        ([0, 2, 40, 44, 5, 1, 2, 0, 0, 1], "5x5 average, stride 1"),
        ([1, 2, 21, 21, 3, 1, 0, 0, 0, 1], "stride 1, 19 outputs a row: an overlapping last vector"),
        ([0, 3, 13, 13, 3, 2, 0, 0, 0, 1], "ConvNet's second average pool: 6 outputs a row, on vectors narrower than the target's"),
        ([1, 3, 15, 15, 3, 2, 1, 0, 0, 1], "8 outputs a row with padding: 128-bit vectors between scalar edges"),
        ([1, 2, 9, 9, 3, 2, 0, 0, 0, 1], "9 columns, 3 wide, stride 2: an 8-float load would end past the row, so no vector"),
        ([1, 3, 55, 55, 3, 2, 0, 1, 0, 1], "SqueezeNet's second ceil-mode pool: the last windows inside the row as one more vector reading into the next plane, in the last plane scalar"),
        ([1, 2, 111, 111, 3, 2, 0, 1, 0, 1], "SqueezeNet's first pool, 111 columns"),
        ([0, 3, 55, 55, 3, 2, 0, 0, 0, 1], "average pool, 55 columns, stride 2: the vector past the last full load"),
        ([0, 4, 6, 6, 3, 2, 0, 0, 0, 1], "ConvNet's last average pool, 6x6 -> 2x2, no vector: every window inside, written out tap by tap"),
        ([1, 4, 7, 7, 3, 2, 1, 0, 0, 1], "max pool on 7x7 with padding, no vector: inside windows written out, border ones checked"),
    ];

    public static TheoryData<string, int> GeneralPoolCases()
    {
        var data = new TheoryData<string, int>();
        foreach (var target in new[] { "x64-sse", "x64-avx2", "x64-avx512" })
            for (int i = 0; i < PoolShapes.Length; i++)
                data.Add(target, i);
        return data;
    }

    [Theory]
    [MemberData(nameof(GeneralPoolCases))]
    public void PoolMatchesOnnxRuntime(string target, int index)
    {
        var (shape, why) = PoolShapes[index];
        var (max, c, h, w, k, stride, pad, ceil, includePad, dilation) = (shape[0] == 1, shape[1], shape[2], shape[3], shape[4], shape[5], shape[6], shape[7], shape[8], shape[9]);
        int Out(int size)
        {
            int span = size + 2 * pad - dilation * (k - 1) - 1;
            return (ceil == 1 ? (span + stride - 1) / stride : span / stride) + 1;
        }
        var pool = new NodeProto
        {
            OpType = max ? "MaxPool" : "AveragePool", Name = "pool", Input = { "x" }, Output = { "y" },
            Attribute = { Ints("kernel_shape", k, k), Ints("strides", stride, stride), Ints("pads", pad, pad, pad, pad), Int("ceil_mode", ceil) },
        };
        if (max) pool.Attribute.Add(Ints("dilations", dilation, dilation));
        else pool.Attribute.Add(Int("count_include_pad", includePad));
        var model = Model([pool], [], [c, h, w], [c, Out(h), Out(w)]);
        var (actual, expected, source) = RunBoth(model, CodeTarget.Resolve(target), c * h * w, new Random(h * 100 + w));
        if (why.Contains("no vector", StringComparison.Ordinal)) Assert.DoesNotContain("vectors of outputs whose windows lie inside the row", source);
        else if (target != "x64-sse" || stride == 1) Assert.Contains("vectors of outputs whose windows lie inside the row", source);
        // A max is exact; an average sums up to 25 values in another order than ONNX Runtime, a few ulps.
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= (max ? 0f : 1e-6f), $"{target} ({why}): element {i} is {actual[i]}, ONNX Runtime {expected[i]}");
    }

    [Fact]
    public void LeNetPoolRunsOnVectors()
    {
        var pool = new NodeProto { OpType = "MaxPool", Name = "pool", Input = { "x" }, Output = { "y" }, Attribute = { Ints("kernel_shape", 2, 2), Ints("strides", 2, 2) } };
        var graph = GraphAnalyzer.Analyze(Model([pool], [], [6, 28, 28], [6, 14, 14]));
        var code = CSharpEmitter.Emit(graph, new EmitOptions("Pool", "M", CodeTarget.Resolve("x64-avx2"), "pool"));
        Assert.Contains("Vector256.Shuffle(", code.Source);
    }

    private const int Batch = 3;

    internal static (float[] Actual, float[] Expected, string Source) RunBoth(OnnxModel model, CodeTarget target, int sampleSize, Random rng, int batch = Batch)
    {
        var input = Random(rng, batch * sampleSize, 1f);
        var path = Path.Combine(Path.GetTempPath(), $"scalpel-kernel-{Guid.NewGuid():N}.onnx");
        try
        {
            model.Save(path);
            using var ort = new OrtReference(path);
            var expected = ort.Run(input, batch);
            var ns = "Kernel_" + target.Name.Replace('-', '_');
            var code = CSharpEmitter.Emit(GraphAnalyzer.Analyze(model), new EmitOptions(ns, "M", target, "kernel"));
            var run = GeneratedAssembly.CompileOne(code, ns);
            var actual = new float[expected.Length];
            run(input, actual, batch);
            return (actual, expected, code.Source);
        }
        finally
        {
            File.Delete(path);
        }
    }

    internal static float[] Random(Random rng, int count, float scale) =>
        Enumerable.Range(0, count).Select(_ => scale * (2 * rng.NextSingle() - 1)).ToArray();

    internal static OnnxModel Model(NodeProto[] nodes, TensorProto[] initializers, int[] input, int[] output)
    {
        var graph = new GraphProto { Name = "kernel", Input = { BatchOf("x", input) }, Output = { BatchOf("y", output) } };
        graph.Node.AddRange(nodes);
        graph.Initializer.AddRange(initializers);
        return new OnnxModel(OnnxGraphs.Model(graph), null, "kernel test");
    }
}
