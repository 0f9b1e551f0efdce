using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Proto;
using Xunit;
using static Scalpel.Tests.ConvPoolKernelTests;
using static Scalpel.Tests.OnnxGraphs;

namespace Scalpel.Tests;

/// <summary>
/// How samples are grouped: dense layers whose weights do not fit in cache read each weight tile once for a whole
/// chunk, and a CNN whose large maps allow one sample per chunk runs its fully connected tail on larger chunks,
/// checked against ONNX Runtime at batch sizes that leave partial chunks and sample groups.
/// </summary>
public sealed class ChunkTests
{
    // Sums of up to 4608 products of inputs in [-1, 1] and weights in [-0.05, 0.05], in a different order from
    // ONNX Runtime's: rounding differences stay near 1e-6, a wrong row or sample is off by 1e-2 or more.
    private const float Tolerance = 2e-5f;

    [Theory]
    [InlineData("x64-avx2", 1)]
    [InlineData("x64-avx2", 5)]
    [InlineData("x64-avx512", 13)]
    [InlineData("x64-sse", 6)]
    public void StreamedDenseMatchesOnnxRuntime(string target, int batch)
    {
        // 1030 x 262 weights: 1.08 MB, past the streaming threshold; 262 rows leave a partial tile, 1030 a scalar k tail.
        const int k = 1030, n = 262;
        var rng = new Random(5);
        var graph = new GraphProto { Name = "streamed", Input = { BatchOf("x", k) }, Output = { BatchOf("y", 10) } };
        graph.Initializer.Add(Floats("w1", Random(rng, n * k, 0.05f), n, k));
        graph.Initializer.Add(Floats("b1", Random(rng, n, 0.05f), n));
        graph.Initializer.Add(Floats("w2", Random(rng, 10 * n, 0.05f), 10, n));
        graph.Node.Add(Node("Gemm", ["x", "w1", "b1"], "h", Int("transB", 1)));
        graph.Node.Add(Node("Relu", ["h"], "r"));
        graph.Node.Add(Node("Gemm", ["r", "w2"], "y", Int("transB", 1)));
        var (actual, expected, source) = RunBoth(new OnnxModel(Model(graph), null, "streamed"), CodeTarget.Resolve(target), k, rng, batch);
        Assert.Contains("past the cache", source);
        // The one-sample rows prefetch the rows 28 ahead, clamped to the last block near the end.
        Assert.Contains("Math.Min(n + 28, N - ", source);
        AssertClose(expected, actual);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(33)]
    [InlineData(70)]
    public void ConvLayersRunPerSampleAndTheDenseTailOnLargerChunks(int batch)
    {
        // [8, 96, 96] conv outputs allow 3 samples per chunk; the [4608] tail allows 32: the convs run one sample at a
        // time inside chunks of 32, and the pooled maps of all 32 are kept for the dense layers.
        var rng = new Random(9);
        var graph = new GraphProto { Name = "tail", Input = { BatchOf("x", 4, 96, 96) }, Output = { BatchOf("y", 10) } };
        graph.Initializer.Add(Floats("wc", Random(rng, 8 * 4 * 9, 0.3f), 8, 4, 3, 3));
        graph.Initializer.Add(Floats("w1", Random(rng, 64 * 4608, 0.05f), 64, 4608));
        graph.Initializer.Add(Floats("w2", Random(rng, 10 * 64, 0.05f), 10, 64));
        graph.Initializer.Add(Floats("wd", Random(rng, 8 * 8 * 9, 0.3f), 8, 8, 3, 3));
        graph.Node.Add(Node("Conv", ["x", "wc"], "c", Ints("kernel_shape", 3, 3), Ints("pads", 1, 1, 1, 1)));
        graph.Node.Add(Node("Relu", ["c"], "cr"));
        graph.Node.Add(Node("MaxPool", ["cr"], "q", Ints("kernel_shape", 2, 2), Ints("strides", 2, 2)));
        // A second conv and pool, so the pooled maps kept for the tail could take the buffer the first pool used.
        graph.Node.Add(Node("Conv", ["q", "wd"], "d", Ints("kernel_shape", 3, 3), Ints("pads", 1, 1, 1, 1)));
        graph.Node.Add(Node("Relu", ["d"], "dr"));
        graph.Node.Add(Node("MaxPool", ["dr"], "p", Ints("kernel_shape", 2, 2), Ints("strides", 2, 2)));
        graph.Node.Add(Node("Flatten", ["p"], "f"));
        graph.Node.Add(Node("Gemm", ["f", "w1"], "h", Int("transB", 1)));
        graph.Node.Add(Node("Relu", ["h"], "hr"));
        graph.Node.Add(Node("Gemm", ["hr", "w2"], "y", Int("transB", 1)));
        var (actual, expected, source) = RunBoth(new OnnxModel(Model(graph), null, "tail"), CodeTarget.Resolve("x64-avx2"), 4 * 96 * 96, rng, batch);
        Assert.Contains("one sample at a time", source);
        Assert.Contains("for (int first = 0; first < batchSize; first += 32)", source);
        AssertClose(expected, actual);
    }

    private static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= Tolerance, $"element {i} (sample {i / 10}) is {actual[i]}, ONNX Runtime {expected[i]}");
    }
}
