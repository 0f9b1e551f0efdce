using Scalpel.Onnx.Layers;

namespace Scalpel.CodeGen;

/// <summary>The kernel generated code runs for a Dense or Conv layer, and why: the report's kernel table.</summary>
public sealed record KernelChoice(string Layer, string Kernel, string Why);

/// <summary>The conv kernels a layer can run, for timing them on this machine.</summary>
public static class ConvKernels
{
    /// <summary>Pixels and channels for a dense ungrouped conv, and each Winograd variant where it fits; none for the others (one kernel each).</summary>
    public static IReadOnlyList<ConvKernel> Candidates(ConvLayer c)
    {
        if (c.Group != 1 || c.Format != WeightFormat.Dense) return [];
        var kernels = new List<ConvKernel> { ConvKernel.Pixels, ConvKernel.Channels };
        if (KernelEmitter.WinogradFits(c)) kernels.Add(ConvKernel.Winograd);
        if (KernelEmitter.WinogradTilesFit(c)) kernels.Add(ConvKernel.WinogradTiles);
        return kernels;
    }

    /// <summary>The kernel the cost model picks for the target.</summary>
    public static ConvKernel CostModelChoice(ConvLayer c, CodeTarget target)
    {
        var k = new KernelEmitter(target with { ConvKernel = ConvKernel.Auto });
        return k.UsesWinogradTiles(c) ? ConvKernel.WinogradTiles : k.UsesWinograd(c) ? ConvKernel.Winograd : k.UsesChannelVectors(c) ? ConvKernel.Channels : ConvKernel.Pixels;
    }

    public static string Describe(ConvKernel k) => k switch
    {
        ConvKernel.Pixels => "pixel GEMM",
        ConvKernel.Channels => "output-channel vectors",
        ConvKernel.Winograd => "Winograd along columns",
        ConvKernel.WinogradTiles => "Winograd on tiles",
        _ => "cost model",
    };
}

internal sealed partial class KernelEmitter
{
    public KernelChoice Choice(DenseLayer d) => d.Format != WeightFormat.Dense ? Sparse(d, "")
        : new(d.Name, "dense GEMM", $"{d.K} inputs to {d.N} outputs, {V}-lane vectors");

    public KernelChoice Choice(ConvLayer c, Epilogue act) => c.Format != WeightFormat.Dense ? Sparse(c, " over im2col rows") : ConvChoice(c, act);

    private static KernelChoice Sparse(WeightedLayer layer, string rows) =>
        new(layer.Name, $"{FormatName(layer.Format)}{(layer.GroupWidth > 1 ? $", groups of {layer.GroupWidth}" : "")}{rows}", "weight-pruned");

    private static string FormatName(WeightFormat f) => f switch
    {
        WeightFormat.Csr => "CSR sparse rows",
        WeightFormat.GroupedCsr => "grouped CSR (SIMD-aware)",
        WeightFormat.OutputGrouped => "output-grouped (SIMD-aware)",
        _ => "dense",
    };

    private KernelChoice ConvChoice(ConvLayer c, Epilogue act)
    {
        var w = c.Window;
        if (UsesFlatDepthwise(c) && UsesDepthwiseKernel(c, act))
            return new(c.Name, "depthwise, flat plane", $"one channel per group, a {w.H}x{w.W} map as one row of {w.H * w.W} outputs in {V}-lane vectors: " + (FlatRowsShort(c) ? $"its rows of {w.W} are at most half a vector" : "the row kernel's taps would not fit the registers beside its sums"));
        if (UsesDepthwiseKernel(c, act))
            return new(c.Name, "depthwise, direct", $"one channel per group, stride {w.StrideW}: rows of {w.OW} outputs fill {DepthwiseLanes(c)}-lane vectors{(w.StrideW == 2 ? ", even and odd columns split as the rows are copied" : "")}"
                + (DepthwiseBand(c).Rows < w.OH ? $"; bands of {DepthwiseBand(c).Rows} rows keep the padded rows they read in L1" : ""));
        if (c.Group > 1)
            return new(c.Name, "pixel GEMM per group", !c.IsDepthwise ? $"{c.Group} groups of {c.C / c.Group} input channels"
                : act.Residual ? "depthwise with a skip connection to add"
                : w.StrideH > 2 || w.StrideW > 2 ? $"depthwise with stride {w.StrideH}x{w.StrideW}"
                : $"depthwise rows of {w.OW} outputs, under one 4-lane vector");
        var (pixel, channel, k) = ConvCosts(c);
        string forced = target.ConvKernel != ConvKernel.Auto ? "forced by the target; "
            : measured is not null && measured.TryGetValue(c.Name, out var m) ? m.Why + "; " : "";
        if (UsesWinogradTiles(c))
            return new(c.Name, $"Winograd {WinogradTilesName(c)} on tiles, across channels{(c.Window.Dilated ? $", {PhaseStep(c) * PhaseStep(c)} dilation phases" : "")}",
                $"{forced}{WinogradTilesCost(c) / 1e6:0.###}M vector operations against {Math.Min(pixel, channel) / 1e6:0.###}M for the direct kernels");
        if (UsesWinograd(c))
            return new(c.Name, $"Winograd {WinogradName(c)} along columns over the pixel GEMM",
                $"{forced}{WinogradCost(c) / 1e6:0.###}M vector operations against {Math.Min(pixel, channel) / 1e6:0.###}M for the direct kernels");
        string costs = $"{channel / 1e6:0.###}M vector FMAs across output channels against {pixel / 1e6:0.###}M across pixels";
        if (UsesChannelVectors(c))
        {
            var (channels, pixels) = ChannelTile(c);
            return new(c.Name, $"output-channel vectors, tiles of {channels} x {pixels}", forced + costs);
        }
        string kernel = UsesPaddedInput(c) ? "pixel GEMM over a zero-padded copy" : "pointwise GEMM";
        string why = forced.Length == 0 && k < 8 * V ? $"{k} products per output, under 8 vectors: the channel kernel's stores would dominate" : forced + costs;
        return new(c.Name, kernel, why);
    }
}
