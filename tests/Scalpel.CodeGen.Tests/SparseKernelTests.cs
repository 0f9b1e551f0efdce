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
        foreach (var format in new[] { WeightFormat.Dense, WeightFormat.Csr, WeightFormat.GroupedCsr })
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
        dense.Format = format;
        dense.GroupWidth = g;

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

    /// <summary>Zeroes whole aligned groups (grouped CSR) or single weights (CSR, dense) at random.</summary>
    private static void Prune(DenseLayer d, WeightFormat format, int g, double sparsity, Random rng)
    {
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
        var sparse = GraphAnalyzer.Analyze(OnnxModel.Load(TestData.Fixture("lenet5.onnx")));
        foreach (var (d, s) in dense.Layers.OfType<ConvLayer>().Zip(sparse.Layers.OfType<ConvLayer>()))
        {
            int cols = d.Weight.Length / d.M;
            for (int r = 0; r < d.M; r++)
                for (int c = 0; c + groupWidth <= cols; c += groupWidth)
                    if (rng.NextDouble() < sparsity) Array.Clear(d.Weight, r * cols + c, groupWidth);
            s.Weight = (float[])d.Weight.Clone();
            s.Format = format;
            s.GroupWidth = groupWidth;
        }
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
