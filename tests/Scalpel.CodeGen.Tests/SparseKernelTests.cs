using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Xunit;

namespace Scalpel.Tests;

/// <summary>Each weight format's generated kernel against a plain dense reference on random matrices.</summary>
public sealed class SparseKernelTests
{
    public static TheoryData<WeightFormat, string, int, int, double> Cases()
    {
        var data = new TheoryData<WeightFormat, string, int, int, double>();
        foreach (var format in new[] { WeightFormat.Dense, WeightFormat.Csr, WeightFormat.GroupedCsr, WeightFormat.OutputGrouped })
            foreach (var target in new[] { "mcu-cortex-m4", "x64-sse", "x64-avx2", "x64-avx512" })
                foreach (var (k, n) in new[] { (37, 11), (100, 10), (300, 19), (784, 33) })
                    foreach (var sparsity in new[] { 0.0, 0.5, 0.9, 0.99 })
                        data.Add(format, target, k, n, sparsity);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void KernelMatchesDenseReference(WeightFormat format, string targetName, int k, int n, double sparsity)
    {
        // The microcontroller profile's 2-lane vectors (Vector64) exercise the narrowest generated kernels.
        var target = targetName == "mcu-cortex-m4" ? new CodeTarget(targetName, 64, true) : CodeTarget.Resolve(targetName);
        var rng = new Random(k * 1000 + n + (int)(sparsity * 100));
        var weight = Enumerable.Range(0, n * k).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var bias = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var model = GraphAnalyzer.Analyze(SyntheticModels.SingleGemm(k, n, weight, bias));
        var dense = (DenseLayer)model.Layers.Single();
        int g = target.Lanes;
        Prune(dense, format, g, sparsity, rng);
        model = model.WithWeights(new Dictionary<string, LayerWeights> { [dense.Name] = dense.Weights with { Format = format, GroupWidth = g } });

        var code = CSharpEmitter.Emit(model, new EmitOptions("Sparse", "Layer", target, "gemm"));
        var run = GeneratedAssembly.CompileOne(code, "Sparse");
        int batch = 7; // not a multiple of the 4-sample tile or the 8-sample chunk
        var x = Enumerable.Range(0, batch * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var y = new float[batch * n];
        run(x, y, batch);
        for (int s = 0; s < batch; s++)
            for (int r = 0; r < n; r++)
            {
                double expected = dense.Bias![r];
                for (int c = 0; c < k; c++) expected += (double)dense.Weight[r * k + c] * x[s * k + c];
                Assert.True(Math.Abs(y[s * n + r] - expected) <= 1e-4 * (1 + Math.Abs(expected)),
                    $"sample {s} row {r}: {y[s * n + r]} vs {expected}");
            }
    }

    [Fact]
    public void GroupedCsrStoresOneIndexPerGroup()
    {
        var weight = new float[2 * 20];
        weight[3] = 1; weight[9] = 2; weight[17] = 3; weight[20 + 8] = 4;
        var m = SparseMatrix.GroupedCsr(weight, 2, 20, 8);
        Assert.Equal([0, 8, 8], m.Columns); // row 0: groups at 0 and 8; row 1: group at 8; column 17 is in the dense tail
        Assert.Equal([0, 2, 3], m.RowStarts);
        Assert.Equal(4, m.TailWidth);
        Assert.Equal(3f, m.Tail[1]);
        Assert.Equal(1, m.IndexBytes);
    }

    [Fact]
    public void OutputGroupedStoresOneIndexPerColumnOfABlock()
    {
        var weight = new float[5 * 3]; // 5 rows, 3 columns, blocks of 4 rows: the second block holds row 4 only
        weight[0 * 3 + 1] = 1; weight[3 * 3 + 1] = 2; weight[2 * 3 + 2] = 3; weight[4 * 3 + 0] = 4;
        var m = SparseMatrix.OutputGrouped(weight, 5, 3, 4);
        Assert.Equal([1, 2, 0], m.Columns);
        Assert.Equal([0, 2, 3], m.RowStarts);
        Assert.Equal([1f, 0, 0, 2, 0, 0, 3, 0, 4, 0, 0, 0], m.Values); // column 1 of rows 0-3, column 2, then row 4 padded
        Assert.Equal((0, 2, 2), (m.TailWidth, m.PointerRows, m.MaxColumn));
    }

    /// <summary>Zeroes whole aligned groups (grouped CSR along inputs, output-grouped along outputs) or single weights (CSR, dense) at random.</summary>
    internal static void Prune(DenseLayer d, WeightFormat format, int g, double sparsity, Random rng)
    {
        if (format == WeightFormat.OutputGrouped)
        {
            for (int r0 = 0; r0 < d.N; r0 += g)
                for (int c = 0; c < d.K; c++)
                    if (rng.NextDouble() < sparsity)
                        for (int r = r0; r < Math.Min(d.N, r0 + g); r++) d.Weight[r * d.K + c] = 0;
            return;
        }
        for (int r = 0; r < d.N; r++)
            if (format == WeightFormat.GroupedCsr)
            {
                for (int c = 0; c + g <= d.K; c += g)
                    if (rng.NextDouble() < sparsity) Array.Clear(d.Weight, r * d.K + c, g);
            }
            else
                for (int c = 0; c < d.K; c++)
                    if (rng.NextDouble() < sparsity) d.Weight[r * d.K + c] = 0;
    }
}

/// <summary>
/// The sparse kernels at every x64 vector width against ONNX Runtime on the same pruned Gemm: both
/// orientations, batch 1 (the unrolled single-sample path), 4 and 7 (4-sample tiles plus the rest), with and
/// without a fused Relu. Float32 sums in another order differ by rounding only: with at most 784 products of
/// magnitude below 0.5 that stays far under the 1e-4 relative tolerance.
/// </summary>
public sealed class SparseKernelOrtTests
{
    public static TheoryData<WeightFormat, string, int, int, bool> Cases()
    {
        var data = new TheoryData<WeightFormat, string, int, int, bool>();
        foreach (var format in new[] { WeightFormat.GroupedCsr, WeightFormat.OutputGrouped })
            foreach (var target in new[] { "x64-sse", "x64-avx2", "x64-avx512" })
                foreach (var (k, n, relu) in new[] { (784, 300, true), (300, 100, false), (37, 11, true) })
                    data.Add(format, target, k, n, relu);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void KernelMatchesOnnxRuntime(WeightFormat format, string targetName, int k, int n, bool relu)
    {
        var target = CodeTarget.Resolve(targetName);
        var rng = new Random(k + n + target.SimdBits);
        var weight = Enumerable.Range(0, n * k).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var bias = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var probe = (DenseLayer)GraphAnalyzer.Analyze(SyntheticModels.SingleGemm(k, n, weight, bias)).Layers.Single();
        SparseKernelTests.Prune(probe, format, target.Lanes, 0.95, rng); // the high sparsity the kernels are for
        var onnx = SyntheticModels.SingleGemm(k, n, probe.Weight, bias);
        var model = GraphAnalyzer.Analyze(onnx);
        var dense = (DenseLayer)model.Layers.Single();
        // A following Relu is fused into the kernel's epilogue by the analyser; set it directly and apply it to ONNX Runtime's output.
        model = model with { Layers = [dense with { Format = format, GroupWidth = target.Lanes, Activation = relu ? Activation.Relu : dense.Activation }] };
        var run = GeneratedAssembly.CompileOne(CSharpEmitter.Emit(model, new EmitOptions("SparseOrt", "Layer", target, "gemm")), "SparseOrt");
        var path = Path.Combine(Path.GetTempPath(), $"scalpel-sparse-ort-{Environment.ProcessId}-{format}-{targetName}-{k}x{n}.onnx");
        onnx.Save(path);
        try
        {
            using var ort = new OrtReference(path);
            foreach (var batch in new[] { 1, 4, 7 })
            {
                var x = Enumerable.Range(0, batch * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
                var expected = ort.Run(x, batch);
                var y = new float[batch * n];
                run(x, y, batch);
                for (int i = 0; i < y.Length; i++)
                {
                    float e = relu ? MathF.Max(expected[i], 0f) : expected[i];
                    Assert.True(Math.Abs(y[i] - e) <= 1e-4 * (1 + Math.Abs(e)), $"batch {batch}, sample {i / n} row {i % n}: {y[i]} vs {e}");
                }
            }
        }
        finally { File.Delete(path); }
    }
}

/// <summary>Sparse conv (im2col rows through the sparse dense kernel) against the dense conv kernels, same zeros.</summary>
public sealed class SparseConvKernelTests
{
    [Theory]
    [InlineData(WeightFormat.GroupedCsr, 2, 0.6)]
    [InlineData(WeightFormat.GroupedCsr, 8, 0.8)]
    [InlineData(WeightFormat.Csr, 1, 0.9)]
    public void SparseConvMatchesDenseConv(WeightFormat format, int groupWidth, double sparsity)
    {
        var target = groupWidth == 2 ? new CodeTarget("mcu-cortex-m4", 64, true) : CodeTarget.Resolve("x64-avx2");
        var rng = new Random(groupWidth);
        var dense = GraphAnalyzer.Analyze(OnnxModel.Load(TestData.Fixture("lenet5.onnx")));
        var pruned = new Dictionary<string, LayerWeights>();
        foreach (var d in dense.Layers.OfType<ConvLayer>())
        {
            int cols = d.Weight.Length / d.M;
            for (int r = 0; r < d.M; r++)
                for (int c = 0; c + groupWidth <= cols; c += groupWidth)
                    if (rng.NextDouble() < sparsity) Array.Clear(d.Weight, r * cols + c, groupWidth);
            pruned[d.Name] = new LayerWeights((float[])d.Weight.Clone(), d.Bias, format, groupWidth);
        }
        var sparse = dense.WithWeights(pruned);
        var a = GeneratedAssembly.CompileOne(CSharpEmitter.Emit(dense, new EmitOptions("ConvDense", "M", target, "lenet5")), "ConvDense");
        var b = GeneratedAssembly.CompileOne(CSharpEmitter.Emit(sparse, new EmitOptions("ConvSparse", "M", target, "lenet5")), "ConvSparse");
        var x = Enumerable.Range(0, 3 * 784).Select(_ => (float)rng.NextDouble()).ToArray();
        var ya = new float[30];
        var yb = new float[30];
        a(x, ya, 3);
        b(x, yb, 3);
        for (int i = 0; i < ya.Length; i++) Assert.True(Math.Abs(ya[i] - yb[i]) <= 1e-4f * (1 + Math.Abs(ya[i])), $"{i}: {ya[i]} vs {yb[i]}");
    }
}
