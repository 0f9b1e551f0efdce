using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;
using Xunit;
using static Scalpel.Tests.ConvPoolKernelTests;
using static Scalpel.Tests.OnnxGraphs;

namespace Scalpel.Tests;

/// <summary>
/// SiLU, HardSwish, HardSigmoid, LeakyRelu and Sigmoid after a conv are applied in the conv's epilogue (no separate
/// pass over its feature map), by each conv kernel, against ONNX Runtime.
/// </summary>
public sealed class ConvGateTests
{
    public static TheoryData<string, string, string> Cases()
    {
        var data = new TheoryData<string, string, string>();
        string[] kernels = ["3x3 pixels", "3x3 channels", "3x3 winograd", "3x3 winograd tiles", "1x1", "depthwise", "depthwise flat"];
        foreach (var kernel in kernels)
            foreach (var gate in new[] { "silu", "hardswish", "hardsigmoid", "leakyrelu", "sigmoid" })
                data.Add("x64-avx2", kernel, gate);
        foreach (var target in new[] { "x64-sse", "x64-avx512" })
            foreach (var kernel in kernels)
                data.Add(target, kernel, "silu");
        // A skip connection after the gate stays a separate Add: the gate runs after the tile's stores.
        data.Add("x64-avx2", "1x1", "silu then skip");
        data.Add("x64-avx2", "3x3 channels", "silu then skip");
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void GateAfterConvMatchesOnnxRuntime(string target, string kernel, string gate)
    {
        // Depthwise on 40 x 40 maps, rows of at least two 16-lane vectors: the row kernel takes them on every target;
        // on 7 x 7 maps the flat-plane kernel does. 19 x 19 maps for the others: 361 pixels, so the channel kernels' transposing store has pixels past its last whole block at every width.
        bool depthwise = kernel.StartsWith("depthwise", StringComparison.Ordinal), flat = kernel == "depthwise flat";
        int c = 8, h = depthwise ? flat ? 7 : 40 : 19, w = h;
        bool pointwise = kernel == "1x1", skip = gate.EndsWith("skip", StringComparison.Ordinal);
        int m = depthwise || skip ? c : 12, k = pointwise ? 1 : 3;
        var rng = new Random(17);
        var bias = Random(rng, m, 0.5f);
        // Two channels far out, past the range where exp overflows a float: the gates must saturate as ONNX Runtime does.
        (bias[0], bias[1]) = (95f, -95f);
        var conv = new NodeProto
        {
            OpType = "Conv", Name = "conv", Input = { "x", "W", "B" }, Output = { "c" },
            Attribute = { Ints("kernel_shape", k, k), Ints("pads", Enumerable.Repeat((long)(k / 2), 4).ToArray()), Int("group", depthwise ? c : 1) },
        };
        var nodes = new List<NodeProto> { conv };
        string output = skip ? "g" : "y";
        switch (gate)
        {
            case "silu" or "silu then skip":
                nodes.Add(new NodeProto { OpType = "Sigmoid", Name = "sigmoid", Input = { "c" }, Output = { "s" } });
                nodes.Add(new NodeProto { OpType = "Mul", Name = "mul", Input = { "c", "s" }, Output = { output } });
                break;
            case "hardswish":
                nodes.Add(new NodeProto { OpType = "HardSwish", Name = "gate", Input = { "c" }, Output = { output } });
                break;
            case "hardsigmoid":
                nodes.Add(new NodeProto { OpType = "HardSigmoid", Name = "gate", Input = { "c" }, Output = { output }, Attribute = { Float("alpha", 0.3f), Float("beta", 0.4f) } });
                break;
            case "leakyrelu":
                nodes.Add(new NodeProto { OpType = "LeakyRelu", Name = "gate", Input = { "c" }, Output = { output }, Attribute = { Float("alpha", 0.1f) } });
                break;
            default:
                nodes.Add(new NodeProto { OpType = "Sigmoid", Name = "gate", Input = { "c" }, Output = { output } });
                break;
        }
        if (skip) nodes.Add(new NodeProto { OpType = "Add", Name = "add", Input = { "g", "x" }, Output = { "y" } });
        var model = Model([.. nodes], [Floats("W", Random(rng, m * (depthwise ? 1 : c) * k * k, 0.5f), m, depthwise ? 1 : c, k, k), Floats("B", bias, m)], [c, h, w], [m, h, w]);
        model.Proto.OpsetImport[0].Version = 14; // HardSwish

        var kernelChoice = kernel switch { "3x3 pixels" => ConvKernel.Pixels, "3x3 channels" => ConvKernel.Channels, "3x3 winograd" => ConvKernel.Winograd, "3x3 winograd tiles" => ConvKernel.WinogradTiles, _ => ConvKernel.Auto };
        var (actual, expected, source) = RunBoth(model, CodeTarget.Resolve(target) with { ConvKernel = kernelChoice }, c * h * w, rng);
        Assert.Matches(gate.StartsWith("silu", StringComparison.Ordinal) ? "Silu 'mul'.*folded into the epilogue" : "'gate'.*folded into the epilogue", source);
        Assert.Equal(skip, source.Contains("L02_Add", StringComparison.Ordinal));
        Assert.Equal(depthwise && !flat, source.Contains("Depthwise convolution, one channel at a time", StringComparison.Ordinal));
        Assert.Equal(flat, source.Contains("as one flat row", StringComparison.Ordinal));
        Assert.Equal(kernel == "3x3 channels", source.Contains("vectorised across output channels", StringComparison.Ordinal));
        Assert.Equal(kernel == "3x3 winograd", source.Contains("by Winograd F(", StringComparison.Ordinal));
        Assert.Equal(kernel == "3x3 winograd tiles", source.Contains("by two-dimensional Winograd F(", StringComparison.Ordinal));
        // Outputs reach 95: ConvTolerance is absolute for outputs of order 1, so scale it for the saturated channels.
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= ConvTolerance * Math.Max(1, Math.Abs(expected[i])), $"{target} {kernel} {gate}: element {i} is {actual[i]}, ONNX Runtime {expected[i]}");
    }
    /// <summary>
    /// Sigmoid and SiLU on vectors of each width against double precision, from -110 to 110 in steps of 1/64 (past
    /// where their exp saturates on both sides). The generated e^-x has a relative error of about 2e-7 plus the
    /// rounding of t = -x log2(e), at most |t| 6e-8 with |t| up to 126: 8e-6 bounds both with room for the final
    /// division's rounding. Saturated outputs are compared in absolute terms: a saturated sigmoid is at most 2^-126 (a float's
    /// smallest normal, about 1.2e-38), times |x| for SiLU.
    /// </summary>
    [Theory]
    [InlineData("x64-sse")]
    [InlineData("x64-avx2")]
    [InlineData("x64-avx512")]
    public void SigmoidAndSiluStayWithinFloatPrecisionOverTheirRange(string target)
    {
        var input = Enumerable.Range(-110 * 64, 220 * 64 + 1).Select(i => i / 64f).ToArray();
        foreach (bool silu in new[] { false, true })
        {
            var nodes = new List<NodeProto> { new() { OpType = "Sigmoid", Name = "sigmoid", Input = { "x" }, Output = { silu ? "s" : "y" } } };
            if (silu) nodes.Add(new NodeProto { OpType = "Mul", Name = "mul", Input = { "x", "s" }, Output = { "y" } });
            var model = Model([.. nodes], [], [input.Length], [input.Length]);
            var ns = "Logistic_" + target.Replace('-', '_');
            var code = CSharpEmitter.Emit(GraphAnalyzer.Analyze(model), new EmitOptions(ns, "M", CodeTarget.Resolve(target), "logistic"));
            Assert.Contains(silu ? "Silu(" : "Sigmoid(", code.Source);
            var actual = new float[input.Length];
            GeneratedAssembly.CompileOne(code, ns)(input, actual, 1);
            for (int i = 0; i < input.Length; i++)
            {
                double x = input[i], exact = (silu ? x : 1) / (1 + Math.Exp(-x));
                Assert.True(Math.Abs(actual[i] - exact) <= 8e-6 * Math.Abs(exact) + 1e-37 * Math.Max(1, Math.Abs(x)), $"{target} {(silu ? "SiLU" : "Sigmoid")}({x}) = {actual[i]}, exactly {exact}");
            }
        }
    }
}
