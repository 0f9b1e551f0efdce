using System.Text.Json;
using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Pruning;
using Scalpel.Pruning.Profiling;
using Scalpel.Pruning.Targets;
using Xunit;

namespace Scalpel.Tests;

/// <summary>
/// Conv kernels chosen by timing them on this machine: one timing per layer shape, kept in a cache file that later
/// runs read (so they choose the same kernels), and the cost model's choice kept where the timings are close.
/// </summary>
public sealed class MeasuredConvKernelsTests : IDisposable
{
    private readonly string _dir = TestData.TempDir();
    private static readonly CodeTarget Target = CodeTarget.Resolve("x64-avx2");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The fixture CNN with a residual block: 3x3 convs of 8 and 16 channels (Winograd fits those) and a strided 1x1.</summary>
    private static ModelGraph ResCnn() => GraphAnalyzer.Analyze(OnnxModel.Load(TestData.Fixture("rescnn.onnx")));

    private sealed class Lines : IProgress<string>
    {
        public List<string> All { get; } = [];
        public void Report(string value) => All.Add(value);
    }

    [Fact]
    public void EachShapeIsTimedOnceAndLaterRunsReadTheCache()
    {
        var model = ResCnn();
        string path = Path.Combine(_dir, "kernels.json");
        var first = new Lines();
        var chosen = MeasuredConvKernels.Choose(model, Target, new KernelTimingCache(path), first);
        var convs = model.Layers.OfType<ConvLayer>().Where(c => ConvKernels.Candidates(c).Count > 1).ToList();
        Assert.NotEmpty(convs);
        Assert.Equal(convs.Select(c => c.Name).Order(), chosen.Keys.Order());
        Assert.Contains(first.All, l => l.StartsWith("timing the conv kernels", StringComparison.Ordinal));
        Assert.All(chosen.Values, m => Assert.StartsWith("measured on this machine: pixel GEMM ", m.Why, StringComparison.Ordinal));

        // One entry per distinct shape, each with a time for every candidate.
        var file = JsonSerializer.Deserialize<Dictionary<string, Dictionary<string, double>>>(File.ReadAllText(path))!;
        Assert.Equal(convs.Select(c => (c.C, c.M, c.Window, c.Activation)).Distinct().Count(), file.Count);
        Assert.All(file.Values, t => Assert.All(t.Values, us => Assert.True(us > 0)));

        // Timings written by hand in which the channel kernel is far ahead: a later run takes them as they are.
        foreach (var times in file.Values)
            foreach (var k in times.Keys.ToList()) times[k] = k == nameof(ConvKernel.Channels) ? 1 : 100;
        File.WriteAllText(path, JsonSerializer.Serialize(file));
        var second = new Lines();
        var again = MeasuredConvKernels.Choose(model, Target, new KernelTimingCache(path), second);
        Assert.DoesNotContain(second.All, l => l.StartsWith("timing", StringComparison.Ordinal));
        Assert.All(again.Values, m => Assert.Equal(ConvKernel.Channels, m.Kernel));
        Assert.All(again.Values, m => Assert.Contains("output-channel vectors 1.00 µs", m.Why, StringComparison.Ordinal));

        // The emitted code runs the chosen kernels, and the report's kernel table says why.
        var code = CSharpEmitter.Emit(model, new EmitOptions("N", "M", Target, "rescnn") { MeasuredKernels = again });
        foreach (var conv in convs)
        {
            var choice = code.Kernels.Single(k => k.Layer == conv.Name);
            Assert.StartsWith("output-channel vectors", choice.Kernel, StringComparison.Ordinal);
            Assert.StartsWith("measured on this machine", choice.Why, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void TheCostModelKeepsItsChoiceUnlessAnotherIsClearlyFaster()
    {
        var conv = ResCnn().Layers.OfType<ConvLayer>().First(c => ConvKernels.Candidates(c).Count > 1);
        var costModel = ConvKernels.CostModelChoice(conv, Target);
        var other = ConvKernels.Candidates(conv).First(k => k != costModel);
        Dictionary<string, double> Times(double costModelTime, double otherTime) =>
            ConvKernels.Candidates(conv).ToDictionary(k => k.ToString(), k => k == costModel ? costModelTime : k == other ? otherTime : 1000);

        // 4 % apart is within a shared machine's spread: the cost model's choice stays.
        Assert.Equal(costModel, MeasuredConvKernels.Pick(conv, Target, Times(104, 100)).Kernel);
        var faster = MeasuredConvKernels.Pick(conv, Target, Times(110, 100));
        Assert.Equal(other, faster.Kernel);
        Assert.EndsWith($"(the cost model's choice: {ConvKernels.Describe(costModel)})", faster.Why, StringComparison.Ordinal);
    }

    [Fact]
    public void AnUnreadableCacheIsTimedAgainAndRewritten()
    {
        string path = Path.Combine(_dir, "kernels.json");
        File.WriteAllText(path, "{ \"not\": [json");
        var lines = new Lines();
        var chosen = MeasuredConvKernels.Choose(ResCnn(), Target, new KernelTimingCache(path), lines);
        Assert.NotEmpty(chosen);
        Assert.Contains(lines.All, l => l.StartsWith("timing the conv kernels", StringComparison.Ordinal));
        Assert.NotEmpty(JsonSerializer.Deserialize<Dictionary<string, Dictionary<string, double>>>(File.ReadAllText(path))!);
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    [Fact]
    public void ACacheThatCannotBeWrittenIsReportedAndTheRunGoesOn()
    {
        string file = Path.Combine(_dir, "a-file");
        File.WriteAllText(file, "");
        string path = Path.Combine(file, "kernels.json"); // under a file: no directory can be made there
        var lines = new Lines();
        var chosen = MeasuredConvKernels.Choose(ResCnn(), Target, new KernelTimingCache(path), lines);
        Assert.NotEmpty(chosen);
        Assert.Contains(lines.All, l => l.Contains("were not saved to", StringComparison.Ordinal));
    }

    [Fact]
    public void PruningForThisMachineTimesTheConvKernels()
    {
        var options = new PruneOptions
        {
            ModelPath = TestData.Fixture("rescnn.onnx"), Target = TargetProfile.Resolve("host"), Namespace = "Pruned", ClassName = "ResCnn",
            MeasureOnHost = true, KernelCachePath = Path.Combine(_dir, "kernels.json"),
        };
        var result = Pipeline.Run(options);
        if (!LayerTimer.Accelerated(options.Target.CodeTarget))
        {
            // Timings of a software fallback would choose for a machine this is not: the cost model chooses.
            Assert.DoesNotContain(result.Report.Kernels, k => k.Why.StartsWith("measured", StringComparison.Ordinal));
            return;
        }
        var convs = result.Model.Layers.OfType<ConvLayer>().Where(c => ConvKernels.Candidates(c).Count > 1).Select(c => c.Name).ToHashSet();
        Assert.NotEmpty(convs);
        Assert.All(result.Report.Kernels.Where(k => convs.Contains(k.Layer)), k => Assert.StartsWith("measured on this machine", k.Why, StringComparison.Ordinal));
        Assert.True(File.Exists(options.KernelCachePath));

        // Another target than this machine's: the cost model chooses, nothing is timed.
        var avx2 = Pipeline.Run(options with { Target = TargetProfile.Resolve("x64-avx2") });
        Assert.DoesNotContain(avx2.Report.Kernels, k => k.Why.StartsWith("measured", StringComparison.Ordinal));
    }
}
