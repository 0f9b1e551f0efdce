using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Pruning.Profiling;
using Scalpel.Pruning.Targets;
using Xunit;
using Xunit.Abstractions;

namespace Scalpel.Tests;

/// <summary>Timing tests run alone: other test classes running beside them would only add noise.</summary>
[CollectionDefinition(nameof(ProfilerCollection), DisableParallelization = true)]
public sealed class ProfilerCollection;

/// <summary>`dotnet scalpel profile`: the generated kernels timed on this machine, the crossover read off, the profile written.</summary>
[Collection(nameof(ProfilerCollection))]
public sealed class ProfilerTests(ITestOutputHelper output)
{
    private sealed class Lines(ITestOutputHelper output) : IProgress<string>
    {
        public void Report(string value) => output.WriteLine(value);
    }

    [Fact]
    public void QuickProfileWritesALoadableTargetWhereGroupedCsrBeatsCsrEarlier()
    {
        var basis = TargetProfile.Resolve("host");
        var result = KernelProfiler.Run(new ProfileOptions
        {
            Base = basis, Quick = true, Progress = new Lines(output),
            Shapes = [new ProfileShape(LayerKind.Fc, 784, 300, 1), new ProfileShape(LayerKind.Conv, 144, 16, 196)],
        });
        output.WriteLine($"{result.Elapsed.TotalSeconds:0.0} s");
        Assert.Equal(2 * (1 + 3 * KernelProfiler.DefaultSparsities.Count), result.Timings.Count); // dense, then CSR, grouped CSR and output-grouped
        Assert.All(result.Timings, t => Assert.True(t.Microseconds > 0 && double.IsFinite(t.Ratio), $"{t}"));

        var path = Path.Combine(TestData.TempDir(), "profiled.json");
        KernelProfiler.Write(result.Profile, path);
        Assert.Equal([path], Directory.GetFiles(Path.GetDirectoryName(path)!)); // no temporary file left
        var loaded = TargetProfile.Resolve(path);
        Assert.Equal("host-profiled", loaded.Name);
        Assert.Equal(basis.SimdBits, loaded.SimdBits);
        Assert.Equal(basis.GroupWidth, loaded.GroupWidth);
        Assert.Equal(basis.Parallelism, loaded.Parallelism);
        Assert.Equal(basis.GroupOrientations, loaded.GroupOrientations);
        Assert.Contains("cores", loaded.Measured);
        Assert.DoesNotContain("codeTarget", File.ReadAllText(path));
        foreach (var c in new[] { loaded.Crossover.Fc, loaded.Crossover.Conv })
        {
            Assert.InRange(c.Csr, 0, 1);
            Assert.InRange(c.GroupedCsr, 0, 1);
            Assert.InRange(c.OutputGrouped, 0, 1);
        }
        // The paper's point: one index per SIMD group instead of one per weight makes sparsity pay off much earlier.
        Assert.True(loaded.Crossover.Fc.GroupedCsr < loaded.Crossover.Fc.Csr,
            $"fc crossover: grouped CSR {loaded.Crossover.Fc.GroupedCsr} vs CSR {loaded.Crossover.Fc.Csr}");
    }

    [Theory]
    [InlineData(new[] { 2.0, 1.5, 1.2, 0.9, 0.5 }, 0.27)] // losing at 0.2 (1.2), winning at 0.3 (0.9): 0.2 + 0.1 * 0.2 / 0.3, rounded up
    [InlineData(new[] { 0.9, 0.8, 0.7, 0.6, 0.5 }, 0.0)] // wins everywhere
    [InlineData(new[] { 3.0, 2.0, 1.5, 1.2, 1.0 }, 1.0)] // never faster: equal is not faster
    [InlineData(new[] { 2.0, 0.9, 1.1, 0.8, 0.5 }, 0.24)] // a win at 0.1 that does not last does not count
    public void CrossoverIsWhereTheSparseKernelWinsFromThenOn(double[] ratios, double expected)
    {
        double[] sparsities = [0, 0.1, 0.2, 0.3, 0.4];
        Assert.Equal(expected, KernelProfiler.Crossover(sparsities, ratios), 6);
    }

    [Fact]
    public void RefusesATargetItCannotMeasureHere()
    {
        var e = Assert.Throws<ScalpelException>(() => KernelProfiler.Run(new ProfileOptions { Base = TargetProfile.Resolve("gpu"), Quick = true }));
        Assert.Contains("gpu", e.Message);
    }
}
