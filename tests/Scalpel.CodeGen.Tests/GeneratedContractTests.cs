using Scalpel.CodeGen;
using Xunit;

namespace Scalpel.Tests;

/// <summary>The generated-code contract: argument checks, weight file checks, embedded weights, determinism.</summary>
public sealed class GeneratedContractTests
{
    private static readonly Lazy<(GeneratedModel Code, Scalpel.Pruning.Profiling.RoslynCompiler Compiled)> Mlp = new(() =>
    {
        var code = ModelCompiler.Generate(TestData.Fixture("mlp.onnx"), CodeTarget.Resolve("x64-avx2"), "Contract", "Mlp");
        var assembly = GeneratedAssembly.Compile("Contract", [code.Source], [("Contract.Mlp.bin", code.Weights)]);
        return (code, assembly);
    });

    private static RunBatch Instance(byte[] weights) => Mlp.Value.Compiled.Instantiate("Contract.Mlp", weights);

    [Fact]
    public void WrongInputOrOutputSizeAtRunIsAClearError()
    {
        var run = Instance(Mlp.Value.Code.Weights);
        var e = Assert.Throws<ArgumentException>(() => run(new float[783], new float[10], 1));
        Assert.Contains("783", e.Message);
        Assert.Contains("784", e.Message);
        Assert.Throws<ArgumentException>(() => run(new float[784 * 2], new float[10], 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => run(new float[0], new float[0], 0));
    }

    [Fact]
    public void CorruptOrForeignWeightFilesAreRefused()
    {
        var good = Mlp.Value.Code.Weights;
        var flipped = (byte[])good.Clone();
        flipped[^5] ^= 0x40;
        Assert.Contains("checksum", Assert.Throws<InvalidDataException>(() => Instance(flipped)).Message);
        Assert.Throws<InvalidDataException>(() => Instance(good[..(good.Length / 2)]));
        Assert.Throws<InvalidDataException>(() => Instance(new byte[100]));
        var lenet = ModelCompiler.Generate(TestData.Fixture("lenet5.onnx"), CodeTarget.Resolve("x64-avx2"), "Contract", "Mlp").Weights;
        Assert.Contains("another model", Assert.Throws<InvalidDataException>(() => Instance(lenet)).Message);
    }

    [Fact]
    public void ParameterlessConstructorUsesTheEmbeddedWeights()
    {
        var type = Mlp.Value.Compiled.Assembly.GetType("Contract.Mlp")!;
        var embedded = Activator.CreateInstance(type)!;
        var run = (RunBatch)Delegate.CreateDelegate(typeof(RunBatch), embedded, type.GetMethod("Run", [typeof(ReadOnlySpan<float>), typeof(Span<float>), typeof(int)])!);
        var input = Enumerable.Range(0, 784).Select(i => (i % 13) / 13f).ToArray();
        var a = new float[10];
        var b = new float[10];
        run(input, a, 1);
        Instance(Mlp.Value.Code.Weights)(input, b, 1);
        Assert.Equal(b, a);
    }

    [Fact]
    public void BatchRunEqualsSampleBySampleRuns()
    {
        var run = Instance(Mlp.Value.Code.Weights);
        var rng = new Random(7);
        var input = Enumerable.Range(0, 784 * 5).Select(_ => (float)rng.NextDouble()).ToArray();
        var batch = new float[50];
        run(input, batch, 5);
        for (int s = 0; s < 5; s++)
        {
            var one = new float[10];
            run(input.AsSpan(s * 784, 784), one, 1);
            Assert.Equal(one, batch.AsSpan(s * 10, 10).ToArray());
        }
    }

    [Fact]
    public void GenerationIsDeterministic()
    {
        foreach (var model in new[] { "mlp", "lenet5", "rescnn" })
        {
            var a = ModelCompiler.Generate(TestData.Fixture(model + ".onnx"), CodeTarget.Resolve("x64-avx512"), "D", "M");
            var b = ModelCompiler.Generate(TestData.Fixture(model + ".onnx"), CodeTarget.Resolve("x64-avx512"), "D", "M");
            Assert.Equal(a.Source, b.Source);
            Assert.Equal(a.Weights, b.Weights);
        }
    }

    [Fact]
    public void WeightSectionsAre64ByteAligned()
    {
        var blob = Mlp.Value.Code.Weights;
        int count = BitConverter.ToInt32(blob, 12);
        for (int i = 0; i < count; i++)
            Assert.Equal(0, BitConverter.ToInt64(blob, WeightBlob.FixedHeaderSize + WeightBlob.EntrySize * i) % 64);
    }
}
