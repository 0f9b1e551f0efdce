using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Pruning;
using Scalpel.Pruning.Data;
using Scalpel.Pruning.Methods;
using Scalpel.Pruning.Planning;
using Scalpel.Pruning.Targets;
using Xunit;
using Xunit.Abstractions;

namespace Scalpel.Tests;

/// <summary>The pruning pipeline end to end on the MLP fixture and real Fashion-MNIST data.</summary>
public sealed class PipelineTests(ITestOutputHelper output)
{
    private static string Data(string name) => Path.Combine(TestData.Fixtures, "data", name);

    private static PruneOptions Options(Method method = Method.Scalpel, string target = "x64-avx2") => new()
    {
        ModelPath = TestData.Fixture("mlp.onnx"), Target = TargetProfile.Resolve(target), Namespace = "Pruned", ClassName = "Mlp",
        Method = method, CalibrationData = Data("fmnist-calib-512-x.npy"),
        ValidationData = Data("fmnist-test-1000-x.npy"), ValidationLabels = Data("fmnist-test-1000-y.npy"),
    };

    private static readonly Lazy<PruneResult> Scalpel = new(() => Pipeline.Run(Options()));

    /// <summary>
    /// With a crossover of zero (sparse never slower), a sparsity level is still offered only where the layer then
    /// stores fewer bytes than dense: one column index per kept group makes small sparsities in narrow groups larger
    /// (4-wide groups with 2-byte indices pay from 11.1 % sparsity on, 16-wide ones from 3 %; blocks of rows along
    /// outputs are zero-padded, so 100 rows in blocks of 16 store 112). The estimate the
    /// plan uses is checked against the bytes of the real sparse matrix at each layer's first level.
    /// </summary>
    [Theory]
    [InlineData("x64-sse", 0.15)]
    [InlineData("x64-avx512", 0.05)]
    public void NoSparsityLevelStoresMoreBytesThanDense(string name, double firstLevel)
    {
        var zero = new Crossover { Csr = 0, GroupedCsr = 0, OutputGrouped = 0 };
        var o = Options(target: name) with { Target = TargetProfile.Resolve(name) with { Crossover = new CrossoverTable { Fc = zero, Conv = zero } } };
        var source = OnnxModel.Load(o.ModelPath);
        var plans = Planner.WeightPlans(GraphAnalyzer.Analyze(source), source.Proto, o);
        Assert.NotEmpty(plans);
        foreach (var p in plans)
        {
            double dense = 4.0 * p.Rows * p.Cols;
            int first = Array.IndexOf(Planner.Levels, p.Candidates[0]);
            Assert.All(p.Candidates, s => Assert.True(SparseMatrix.EstimatedBytes(p.Rows, p.Cols, p.GroupWidth, p.AlongOutputs, s) < dense, $"{p.Layer.Name} at {s:P0}"));
            if (first > 0) Assert.True(SparseMatrix.EstimatedBytes(p.Rows, p.Cols, p.GroupWidth, p.AlongOutputs, Planner.Levels[first - 1]) >= dense, $"{p.Layer.Name}: {Planner.Levels[first - 1]:P0} left out");
            var pruned = WeightPruning.Prune(p.Layer.Weight, p.Rows, p.Cols, p.GroupWidth, p.Candidates[0], Criterion.Magnitude, null, p.AlongOutputs).Weight;
            long actual = SparseMatrix.For(p.Format, pruned, p.Rows, p.Cols, p.GroupWidth).Bytes;
            Assert.InRange(SparseMatrix.EstimatedBytes(p.Rows, p.Cols, p.GroupWidth, p.AlongOutputs, p.Candidates[0]), 0.97 * actual, 1.03 * actual);
        }
        Assert.Equal(firstLevel, plans[0].Candidates[0]); // the 300x784 layer: 2-byte indices, 300 rows in blocks of 4 or 16
    }

    [Fact]
    public void ScalpelPrunesTheMlpWithinTheAccuracyBudget()
    {
        var report = Scalpel.Value.Report;
        output.WriteLine(report.ToMarkdown());
        Assert.Equal("accuracy", report.AccuracyMetric);
        Assert.True(report.AccuracyAfter >= report.AccuracyBefore - 0.005, $"accuracy {report.AccuracyBefore} -> {report.AccuracyAfter}");
        // Measured here: 24.4% smaller within 0.5 points (75% with the old point-estimate floor: 1000 validation
        // samples confirm a 0.5-point budget at 95% only for steps that change almost no prediction); 20% leaves
        // room for other machines' float rounding.
        Assert.True(report.SizeReduction >= 0.2, $"only {report.SizeReduction:P1} smaller");
        // x64-avx2 offers both orientations; the output-grouped kernel's crossover is the lower one.
        Assert.Contains(Scalpel.Value.Model.Layers.OfType<DenseLayer>(), d => d.Format == WeightFormat.OutputGrouped && d.GroupWidth == 8);
        // The report names the kernel of every FC layer, as the generated code runs it.
        Assert.Equal(Scalpel.Value.Model.Layers.OfType<WeightedLayer>().Select(l => l.Name), report.Kernels.Select(k => k.Layer));
        Assert.All(report.Kernels.Zip(Scalpel.Value.Model.Layers.OfType<WeightedLayer>()),
            p => Assert.Equal(p.Second.Format == WeightFormat.Dense, p.First.Kernel == "dense GEMM"));
        Assert.Contains("| layer | generated kernel | why |", report.ToMarkdown());
        // The delta comes with its paired interval; 1000 samples cannot resolve a 0.5-point budget at the few percent
        // of disagreement pruning leaves here, so the guard refused steps within it and SCALPEL2004 says so.
        var interval = Assert.IsType<DeltaInterval>(report.AccuracyDeltaInterval);
        double delta = report.AccuracyAfter!.Value - report.AccuracyBefore!.Value;
        Assert.InRange(delta, interval.Lower, interval.Upper);
        Assert.True(interval.Upper - interval.Lower > 0.005, $"interval {interval}");
        Assert.Contains("95% interval", report.ToMarkdown());
        var unresolved = Assert.Single(report.Warnings, w => w.Code == ReportWarning.ValidationTooSmall);
        Assert.Contains("samples would", unresolved.Message);
    }

    [Fact]
    public void GeneratedPrunedCodeMatchesOnnxRuntimeOnThePrunedModel()
    {
        var result = Scalpel.Value;
        Assert.Equal(5, Pipeline.Write(result, TestData.TempDir(), "Mlp").Count);
        AssertGeneratedMatchesOnnxRuntime(result, "Mlp");
    }

    [Fact]
    public void PrunedOnnxModelIsValidAndKeepsTheZeros()
    {
        var dir = TestData.TempDir();
        Pipeline.Write(Scalpel.Value, dir, "Mlp");
        var graph = GraphAnalyzer.Analyze(OnnxModel.Load(Path.Combine(dir, "Mlp.onnx")));
        var first = graph.Layers.OfType<DenseLayer>().First();
        double zeros = first.Weight.Count(w => w == 0f) / (double)first.Weight.Length;
        // Measured: 24.6 % (25 % of its groups; the guard's 95 % bound on 1000 validation samples allows no more).
        Assert.True(zeros >= 0.2, $"first layer is only {zeros:P0} zeros");
    }

    [Fact]
    public void MicrocontrollerTargetPrunesConvLayersInGroupsOfTwo()
    {
        // Low parallelism: SIMD-aware weight pruning of conv layers too (docs/pruning.md). A fixed sparsity and an
        // open budget force it, so the generated sparse conv kernels are checked against ONNX Runtime on the pruned model.
        var options = Options(target: "mcu-cortex-m4") with
        {
            ModelPath = TestData.Fixture("lenet5.onnx"), ClassName = "LeNet", MaxAccuracyDrop = 100,
            Overrides = new Dictionary<string, LayerOverride> { ["conv"] = new(Sparsity: 0.5), ["fc"] = new(KeepDense: true) },
        };
        var result = Pipeline.Run(options);
        Assert.All(result.Model.Layers.OfType<ConvLayer>(), c => Assert.Equal((WeightFormat.GroupedCsr, 2), (c.Format, c.GroupWidth)));
        // A weight-pruned conv is not reported as left dense.
        Assert.All(result.Report.Layers.Where(l => l.Kind == "conv"), l => Assert.DoesNotContain("left dense", l.Note ?? ""));
        AssertGeneratedMatchesOnnxRuntime(result, "LeNet");
    }

    /// <summary>The generated code against ONNX Runtime on the pruned ONNX model the pipeline wrote, on 1000 real images.</summary>
    private void AssertGeneratedMatchesOnnxRuntime(PruneResult result, string className)
    {
        var dir = TestData.TempDir();
        Pipeline.Write(result, dir, className);
        var run = GeneratedAssembly.CompileOne(result.Code, "Pruned");
        var images = NpyFile.Read(Data("fmnist-test-1000-x.npy"));
        var generated = new float[images.Count * 10];
        run(images.Floats, generated, images.Count);
        using var ort = new OrtReference(Path.Combine(dir, className + ".onnx"));
        var expected = ort.Run(images.Floats!, images.Count);
        float maxError = 0;
        for (int i = 0; i < expected.Length; i++) maxError = Math.Max(maxError, Math.Abs(expected[i] - generated[i]));
        for (int s = 0; s < images.Count; s++)
            Assert.Equal(ArgMax(expected.AsSpan(s * 10, 10)), ArgMax(generated.AsSpan(s * 10, 10)));
        output.WriteLine($"{className}: max |logit error| {maxError:E2}");
        // Same tolerance and reasoning as the dense fixtures: rounding-order differences only.
        Assert.True(maxError <= 1e-4f, $"max logit error {maxError}");
    }

    [Fact]
    public void TechniqueOverrideNodePrunesFcLayersOnACpuTarget()
    {
        var result = Pipeline.Run(Options() with { Overrides = new Dictionary<string, LayerOverride> { ["fc"] = new(Technique: Technique.Node) } });
        output.WriteLine(result.Report.ToMarkdown());
        var first = result.Model.Layers.OfType<DenseLayer>().First();
        Assert.True(first.N < 300, $"first layer kept all {first.N} neurons");
        Assert.All(result.Model.Layers.OfType<DenseLayer>(), d => Assert.Equal(WeightFormat.Dense, d.Format));
        Assert.Contains(result.Report.Layers, l => l.Technique.StartsWith("node pruning", StringComparison.Ordinal));
        AssertGeneratedMatchesOnnxRuntime(result, "Mlp");
    }

    /// <summary>Retraining on the 512 calibration images (their labels), one short step: the plumbing, not the accuracy.</summary>
    private static PruneOptions Retraining(PruneOptions o) => o with
    {
        TrainingData = Data("fmnist-calib-512-x.npy"), TrainingLabels = Data("fmnist-calib-512-y.npy"),
        Retraining = new RetrainOptions { EpochsPerStep = 1, MaxSteps = 1 },
    };

    [Fact]
    public void RetrainedMlpKeepsItsSparsityPatternAndMatchesOnnxRuntime()
    {
        var withoutRetraining = Scalpel.Value;
        // A 2-point budget: 1000 validation samples cannot confirm 0.5 points at 95 % even for a retrained model
        // that scores higher than the original, and the guard would keep the untrained weights. A fixed sparsity well
        // inside it (50 % of the hidden layers: +0.5 points before retraining), because the search would stop at the
        // budget's edge, where one epoch on 512 images (-0.7 points measured) leaves the bound short of it.
        var result = Pipeline.Run(Retraining(Options() with
        {
            MaxAccuracyDrop = 2, Overrides = new Dictionary<string, LayerOverride> { ["fc"] = new(Sparsity: 0.5), ["/5/Gemm"] = new(KeepDense: true) },
        }));
        output.WriteLine(result.Report.ToMarkdown());
        Assert.Matches(@"^\d+ epochs of masked fine-tuning on 512 samples", result.Report.Retraining);
        Assert.True(result.Report.AccuracyAfter >= result.Report.AccuracyBefore - 0.02, $"accuracy {result.Report.AccuracyBefore} -> {result.Report.AccuracyAfter}");
        // The exported ONNX model holds exactly the weights (zeros included) the code was generated from.
        var exported = GraphAnalyzer.Analyze(new OnnxModel(result.PrunedOnnx, null, "retrained"));
        foreach (var (layer, written) in result.Model.Layers.OfType<DenseLayer>().Zip(exported.Layers.OfType<DenseLayer>()))
        {
            Assert.Equal(layer.Weight, written.Weight);
            Assert.Equal(layer.Bias, written.Bias);
        }
        var first = result.Model.Layers.OfType<DenseLayer>().First();
        var untrained = withoutRetraining.Model.Layers.OfType<DenseLayer>().First();
        Assert.NotEqual(untrained.Bias, first.Bias); // biases trained too
        AssertGeneratedMatchesOnnxRuntime(result, "Mlp");
    }

    [Fact]
    public void RetrainingNodePrunedConvLayersKeepsAValidModel()
    {
        var result = Pipeline.Run(Retraining(Options() with { ModelPath = TestData.Fixture("lenet5.onnx"), ClassName = "LeNet", MaxAccuracyDrop = 3 }));
        output.WriteLine(result.Report.ToMarkdown());
        Assert.Contains(result.Report.Search, s => s.StartsWith("retrained node step 1", StringComparison.Ordinal));
        Assert.Contains(result.Model.Layers.OfType<ConvLayer>(), c => c.M < 16 || c.M < 6);
        AssertGeneratedMatchesOnnxRuntime(result, "LeNet");
    }

    [Fact]
    public void LearnedNodeGatesFoldIntoTheFiltersExactly()
    {
        var options = Retraining(Options() with { ModelPath = TestData.Fixture("lenet5.onnx"), ClassName = "LeNet", MaxAccuracyDrop = 3 });
        var result = Pipeline.Run(options with { Retraining = options.Retraining with { NodeSelection = NodeSelection.Gates } });
        output.WriteLine(result.Report.ToMarkdown());
        Assert.Contains(result.Report.Search, s => s.StartsWith("node gates of /0/Conv", StringComparison.Ordinal));
        AssertGeneratedMatchesOnnxRuntime(result, "LeNet");
    }

    [Fact]
    public void BatchNormFoldingKeepsTheFunction()
    {
        var model = OnnxModel.Load(TestData.Fixture("rescnn.onnx"));
        var folded = BatchNormFolding.Apply(model.Proto);
        Assert.Contains(model.Proto.Graph.Node, n => n.OpType == "BatchNormalization");
        Assert.DoesNotContain(folded.Graph.Node, n => n.OpType == "BatchNormalization");
        Assert.All(GraphAnalyzer.Analyze(new OnnxModel(folded, null, "folded")).Layers.OfType<ConvLayer>(), c => Assert.True(OnnxWriteback.CanRewrite(folded, c), c.Name));
        var dir = TestData.TempDir();
        new OnnxModel(folded, null, "folded").Save(Path.Combine(dir, "folded.onnx"));
        var images = NpyFile.Read(Data("fmnist-test-1000-x.npy")).Floats![..(100 * 784)];
        using var before = new OrtReference(TestData.Fixture("rescnn.onnx"));
        using var after = new OrtReference(Path.Combine(dir, "folded.onnx"));
        var (a, b) = (before.Run(images, 100), after.Run(images, 100));
        // Folding reassociates one multiply per weight: float rounding only.
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 1e-4f + 1e-4f * Math.Abs(a[i]), $"logit {i}: {a[i]} vs {b[i]}");
    }

    [Fact]
    public void RetrainingWithoutValidationDataIsAClearError()
    {
        var e = Assert.Throws<ScalpelException>(() => Pipeline.Run(Retraining(Options()) with { CalibrationData = null, ValidationData = null, ValidationLabels = null }));
        Assert.Equal(ErrorCode.Option, e.Code);
        Assert.Contains("needs validation data", e.Message);
    }

    [Fact]
    public void TrainingDataWithoutLabelsIsAClearError()
    {
        var e = Assert.Throws<ScalpelException>(() => Pipeline.Run(Options() with { TrainingData = Data("fmnist-calib-512-x.npy") }));
        Assert.Equal(ErrorCode.Data, e.Code);
        Assert.Contains("labels", e.Message);
    }

    [Fact]
    public void ReportMeasuresEachLayerOnThisMachine()
    {
        var result = Pipeline.Run(Options() with { MeasureOnHost = true });
        var layers = result.Report.Layers;
        if (!global::Scalpel.Pruning.Profiling.LayerTimer.Accelerated(TargetProfile.Resolve("x64-avx2").CodeTarget))
        {
            // Without AVX2 here the timings would describe a software fallback: the report says "not measured".
            Assert.All(layers, l => Assert.Null(l.MeasuredMicroseconds));
            return;
        }
        Assert.All(layers, l => Assert.True(l.MeasuredMicroseconds > 0 && l.MeasuredDenseMicroseconds > 0, l.Name));
        Assert.Contains("measured here", result.Report.ToMarkdown());
    }

    [Fact]
    public void TraditionalPruningStoresCsr()
    {
        var result = Pipeline.Run(Options(Method.Traditional));
        output.WriteLine(result.Report.ToMarkdown());
        Assert.Contains(result.Model.Layers.OfType<DenseLayer>(), d => d.Format == WeightFormat.Csr);
        Assert.True(result.Report.AccuracyAfter >= result.Report.AccuracyBefore - 0.005);
    }

    [Fact]
    public void FixedSparsityIsAppliedWithAWarningWhenTheGuardWouldRefuseIt()
    {
        // 99% of every layer's weights removed costs far more than 0.5 points: the search would refuse it, but a
        // sparsity the user fixed is applied as asked, with a warning.
        var options = Options() with
        {
            Overrides = new Dictionary<string, LayerOverride> { ["fc"] = new(Sparsity: 0.99) },
        };
        var pruned = Pipeline.Run(options);
        output.WriteLine(pruned.Report.ToMarkdown());
        Assert.All(pruned.Model.Layers.OfType<DenseLayer>(), d => Assert.NotEqual(WeightFormat.Dense, d.Format));
        Assert.All(pruned.Report.Layers, l => Assert.InRange(l.KeptFraction, 0.005, 0.05));
        Assert.True(pruned.Report.AccuracyAfter < pruned.Report.AccuracyBefore - 0.005, $"{pruned.Report.AccuracyBefore} -> {pruned.Report.AccuracyAfter}");
        Assert.Contains(pruned.Report.Warnings, w => w.Code == ReportWarning.FixedSparsityOverBudget);
    }

    [Fact]
    public void FixedSparsityWithinBudgetWarnsOfNothing()
    {
        // Measured: +0.60 points, 95 % lower bound +0.05, far within the 0.5-point budget. (Both hidden layers at 50 %
        // sat within 0.1 points of the bound, too close for a test: -0.43 before the refit kept the weights' scale, -0.66 after.)
        var options = Options() with
        {
            Overrides = new Dictionary<string, LayerOverride> { ["fc"] = new(KeepDense: true), ["/3/Gemm"] = new(Sparsity: 0.5) },
        };
        var pruned = Pipeline.Run(options);
        Assert.Equal(1, pruned.Model.Layers.OfType<DenseLayer>().Count(d => d.Format != WeightFormat.Dense));
        Assert.DoesNotContain(pruned.Report.Warnings, w => w.Code == ReportWarning.FixedSparsityOverBudget);
    }

    [Fact]
    public void TargetWithoutTheOutputOrientationGroupsAlongInputs()
    {
        var avx2 = TargetProfile.Resolve("x64-avx2");
        Assert.Contains(GroupOrientation.Outputs, avx2.GroupOrientations);
        var options = Options() with
        {
            Target = avx2 with { GroupOrientations = [GroupOrientation.Inputs] },
            Overrides = new Dictionary<string, LayerOverride> { ["fc"] = new(Sparsity: 0.7), ["/5/Gemm"] = new(KeepDense: true) },
        };
        var pruned = Pipeline.Run(options);
        Assert.Equal(2, pruned.Model.Layers.OfType<DenseLayer>().Count(d => d.Format == WeightFormat.GroupedCsr && d.GroupWidth == 8));
        AssertGeneratedMatchesOnnxRuntime(pruned, "Mlp");
    }

    [Fact]
    public void SparseKernelThatMeasuresSlowerThanDenseRunsDense()
    {
        if (!global::Scalpel.Pruning.Profiling.LayerTimer.Accelerated(TargetProfile.Resolve("x64-avx2").CodeTarget)) return; // nothing to measure here
        // Scalar CSR at 30% sparsity does about 0.7x the dense work one weight at a time: on the 784x300 and 300x100
        // layers several times slower than the vector dense kernel (profiled crossover 0.92), far beyond timing noise,
        // so the measurement must reject it. (The 100x10 layer takes well under a microsecond either way: too close to call.)
        var options = Options(Method.Traditional) with
        {
            MeasureOnHost = true, MaxAccuracyDrop = 100,
            Overrides = new Dictionary<string, LayerOverride> { ["fc"] = new(Sparsity: 0.3), ["/5/Gemm"] = new(KeepDense: true) },
        };
        var pruned = Pipeline.Run(options);
        output.WriteLine(pruned.Report.ToMarkdown());
        Assert.All(pruned.Model.Layers.OfType<DenseLayer>(), d => Assert.Equal(WeightFormat.Dense, d.Format));
        var big = pruned.Report.Layers.Where(l => l.Name != "/5/Gemm").ToList();
        Assert.Equal(2, big.Count);
        Assert.All(big, l => Assert.Contains("measured slower", l.Note));
        Assert.All(big, l => Assert.InRange(l.KeptFraction, 0.65, 0.75));
        Assert.DoesNotContain(pruned.Report.Warnings, w => w.Code == ReportWarning.NothingPruned);
        AssertGeneratedMatchesOnnxRuntime(pruned, "Mlp");
    }

    [Fact]
    public void WithoutDataItPrunesConservativelyAndSaysAccuracyWasNotChecked()
    {
        var result = Pipeline.Run(Options() with { CalibrationData = null, ValidationData = null, ValidationLabels = null });
        Assert.Equal("none", result.Report.AccuracyMetric);
        Assert.Contains("not checked", result.Report.ToMarkdown());
        Assert.Contains("none (no calibration data)", result.Report.Reconstruction);
        Assert.InRange(result.Report.SizeReduction, 0.2, 0.6);
    }

    private static int ArgMax(ReadOnlySpan<float> v)
    {
        int best = 0;
        for (int i = 1; i < v.Length; i++) if (v[i] > v[best]) best = i;
        return best;
    }
}
