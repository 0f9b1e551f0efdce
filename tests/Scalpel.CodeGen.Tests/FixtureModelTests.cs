using System.Text.Json;
using Scalpel.CodeGen;
using Scalpel.Pruning.Data;
using Xunit;
using Xunit.Abstractions;

namespace Scalpel.Tests;

/// <summary>Every fixture model: generated code against ONNX Runtime on real Fashion-MNIST images.</summary>
public sealed class FixtureModelTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var model in new[] { "mlp", "lenet5", "rescnn" })
            foreach (var target in new[] { "x64-sse", "x64-avx2", "x64-avx512" })
                data.Add(model, target);
        return data;
    }

    // Logits are O(10); generated code and ONNX Runtime (MLAS) sum up to 784 products in different orders
    // (vector lanes, FMA), so float32 rounding moves a logit by a few ulps: measured at most 7.6e-6 on these
    // fixtures. 1e-4 leaves an order of magnitude for other machines' ONNX Runtime kernels.
    private const float MaxLogitError = 1e-4f;

    [Theory]
    [MemberData(nameof(Cases))]
    public void GeneratedCodeMatchesOnnxRuntimeOn1000Images(string model, string target)
    {
        var images = NpyFile.Read(Path.Combine(TestData.Fixtures, "data", "fmnist-test-1000-x.npy"));
        var path = TestData.Fixture(model + ".onnx");
        var code = ModelCompiler.Generate(path, CodeTarget.Resolve(target), "Fixture." + model, "Model");
        var run = GeneratedAssembly.CompileOne(code, "Fixture." + model);

        int n = images.Count;
        var generated = new float[n * 10];
        run(images.Floats, generated, n);
        using var ort = new OrtReference(path);
        var expected = ort.Run(images.Floats!, n);

        float maxError = 0;
        int disagreements = 0;
        for (int s = 0; s < n; s++)
        {
            var g = generated.AsSpan(s * 10, 10);
            var e = expected.AsSpan(s * 10, 10);
            for (int i = 0; i < 10; i++) maxError = Math.Max(maxError, Math.Abs(g[i] - e[i]));
            if (ArgMax(g) != ArgMax(e)) disagreements++;
        }
        output.WriteLine($"{model} on {target}: {n} images, top-1 disagreements {disagreements}, max |logit error| {maxError:E2}");
        Assert.Equal(0, disagreements);
        Assert.True(maxError <= MaxLogitError, $"max logit error {maxError} exceeds {MaxLogitError}");
    }

    [Theory]
    [InlineData("mlp")]
    [InlineData("lenet5")]
    [InlineData("rescnn")]
    public void GeneratedCodeReproducesRecordedTestAccuracyOnFull10kTestSet(string model)
    {
        TestData.RequireDebianPackage(TestData.FashionMnist, "dataset-fashion-mnist");
        var images = IdxFile.ReadImages(Path.Combine(TestData.FashionMnist, "t10k-images-idx3-ubyte.gz"), out int n, out _);
        var labels = IdxFile.ReadLabels(Path.Combine(TestData.FashionMnist, "t10k-labels-idx1-ubyte.gz"));
        var code = ModelCompiler.Generate(TestData.Fixture(model + ".onnx"), CodeTarget.Resolve("host"), "Accuracy." + model, "Model");
        var run = GeneratedAssembly.CompileOne(code, "Accuracy." + model);
        var logits = new float[n * 10];
        run(images, logits, n);
        int correct = Enumerable.Range(0, n).Count(i => ArgMax(logits.AsSpan(i * 10, 10)) == labels[i]);
        double accuracy = (double)correct / n;

        using var json = JsonDocument.Parse(File.ReadAllText(TestData.Fixture("fixtures.json")));
        double recorded = json.RootElement.GetProperty(model).GetProperty("test_accuracy").GetDouble();
        output.WriteLine($"{model}: generated code {accuracy:P2} on {n} test images; recorded by PyTorch at export {recorded:P2}");
        // PyTorch and float32 C# differ in rounding only: at most a couple of borderline images may flip.
        Assert.InRange(accuracy, recorded - 0.0005, recorded + 0.0005);
    }

    private static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }
}
