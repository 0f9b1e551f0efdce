using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;
using Scalpel.Pruning.Data;
using Scalpel.Pruning.Training;
using Xunit;
using static Scalpel.Tests.OnnxGraphs;

namespace Scalpel.Tests;

/// <summary>The trainer: gradients against finite differences for every operator, forward against ONNX Runtime, masks, determinism.</summary>
public sealed class TrainingTests
{
    /// <summary>A small ONNX graph with input "x" [N, ...shape] and output "y" [N, classes].</summary>
    private sealed class Builder(int[] inputShape, int classes)
    {
        private readonly GraphProto _graph = new() { Name = "test" };
        private readonly Random _random = new(7);
        private int _names;

        public string Init(int[] dims, float scale = 0.5f) =>
            Const(dims, Enumerable.Range(0, dims.Aggregate(1, (a, b) => a * b)).Select(_ => (float)(_random.NextDouble() * 2 - 1) * scale).ToArray());

        public string Const(int[] dims, params float[] values)
        {
            var t = Floats("c" + _names++, values, dims.Select(d => (long)d).ToArray());
            _graph.Initializer.Add(t);
            return t.Name;
        }

        public string Node(string op, string[] inputs, params AttributeProto[] attributes)
        {
            string output = "t" + _names++;
            var node = new NodeProto { OpType = op, Name = op + _names, Output = { output } };
            node.Input.AddRange(inputs);
            node.Attribute.AddRange(attributes);
            _graph.Node.Add(node);
            return output;
        }

        /// <summary>Flatten, then a Gemm to the classes (so every case has weights and logits).</summary>
        public ModelGraph Finish(string x, int features)
        {
            var flat = Node("Flatten", [x]);
            var y = Node("Gemm", [flat, Init([classes, features]), Init([classes])], Int("transB", 1));
            _graph.Node[^1].Output[0] = "y";
            _graph.Input.Add(BatchOf("x", inputShape));
            _graph.Output.Add(BatchOf("y", classes));
            return GraphAnalyzer.Analyze(new OnnxModel(Model(_graph), null, "test"));
        }
    }

    public static TheoryData<string> Operators => new()
    {
        "Gemm+Relu", "MatMul+Add", "Conv", "DepthwiseConv", "GroupedDilatedConv", "MaxPool", "AveragePool", "GlobalPools",
        "BatchNorm", "AddSubMul", "Activations", "Concat", "Softmax", "FinalSoftmax", "FinalLogSoftmax",
    };

    private static ModelGraph Case(string name)
    {
        switch (name)
        {
            case "Gemm+Relu":
            {
                var b = new Builder([6], 4);
                var h = b.Node("Relu", [b.Node("Gemm", ["x", b.Init([5, 6]), b.Init([5])], Int("transB", 1))]);
                return b.Finish(h, 5);
            }
            case "MatMul+Add":
            {
                var b = new Builder([6], 3);
                return b.Finish(b.Node("Add", [b.Node("MatMul", ["x", b.Init([6, 5])]), b.Init([5])]), 5);
            }
            case "Conv":
            {
                var b = new Builder([2, 5, 5], 3);
                var h = b.Node("Relu", [b.Node("Conv", ["x", b.Init([3, 2, 3, 3]), b.Init([3])], Ints("pads", 1, 1, 1, 1), Ints("strides", 2, 2))]);
                return b.Finish(h, 3 * 3 * 3);
            }
            case "DepthwiseConv":
            {
                var b = new Builder([3, 5, 5], 3);
                return b.Finish(b.Node("Conv", ["x", b.Init([3, 1, 3, 3]), b.Init([3])], Ints("pads", 1, 1, 1, 1), Int("group", 3)), 3 * 25);
            }
            case "GroupedDilatedConv":
            {
                var b = new Builder([4, 6, 6], 3);
                return b.Finish(b.Node("Conv", ["x", b.Init([4, 2, 2, 2])], Ints("dilations", 2, 2), Int("group", 2)), 4 * 16);
            }
            case "MaxPool":
            {
                var b = new Builder([2, 5, 5], 3);
                return b.Finish(b.Node("MaxPool", ["x"], Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1)), 2 * 9);
            }
            case "AveragePool":
            {
                var b = new Builder([2, 5, 5], 3);
                var a = b.Node("AveragePool", ["x"], Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1));
                var c = b.Node("AveragePool", ["x"], Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1), Int("count_include_pad", 1));
                return b.Finish(b.Node("Concat", [a, c], Int("axis", 1)), 4 * 9);
            }
            case "GlobalPools":
            {
                var b = new Builder([3, 4, 4], 3);
                return b.Finish(b.Node("Concat", [b.Node("GlobalAveragePool", ["x"]), b.Node("GlobalMaxPool", ["x"])], Int("axis", 1)), 6);
            }
            case "BatchNorm":
            {
                var b = new Builder([3, 4, 4], 3);
                var bn = b.Node("BatchNormalization", ["x", b.Init([3]), b.Init([3]), b.Init([3]), b.Const([3], 0.5f, 1.2f, 2f)]);
                return b.Finish(b.Node("Relu", [bn]), 48);
            }
            case "AddSubMul":
            {
                var b = new Builder([2, 3, 3], 3);
                var conv = b.Node("Conv", ["x", b.Init([2, 2, 1, 1])]);
                var sum = b.Node("Add", ["x", conv]);
                var diff = b.Node("Sub", [sum, b.Init([2, 1, 1])]);
                return b.Finish(b.Node("Mul", [diff, b.Node("Tanh", [conv])]), 18);
            }
            case "Activations":
            {
                var b = new Builder([8], 3);
                var h = b.Node("Gemm", ["x", b.Init([8, 8]), b.Init([8])], Int("transB", 1));
                var l = b.Node("LeakyRelu", [h], Float("alpha", 0.1f));
                var s = b.Node("Sigmoid", [l]);
                var t = b.Node("Tanh", [b.Node("Gemm", [s, b.Init([8, 8])], Int("transB", 1))]);
                var c = b.Node("Clip", [t, b.Const([], -0.5f), b.Const([], 0.6f)]);
                return b.Finish(c, 8);
            }
            case "Concat":
            {
                var b = new Builder([2, 3, 3], 3);
                var a = b.Node("Conv", ["x", b.Init([2, 2, 1, 1])]);
                return b.Finish(b.Node("Concat", ["x", a, b.Init([1, 1, 3, 3])], Int("axis", 1)), 5 * 9);
            }
            case "Softmax":
            {
                var b = new Builder([6], 3);
                var h = b.Node("Gemm", ["x", b.Init([5, 6])], Int("transB", 1));
                return b.Finish(b.Node("Softmax", [h], Int("axis", 1)), 5);
            }
        }
        throw new ArgumentException(name);
    }

    [Theory]
    [MemberData(nameof(Operators))]
    public void GradientsMatchFiniteDifferences(string name)
    {
        var model = name.StartsWith("Final", StringComparison.Ordinal) ? FinalSoftmaxModel(name == "FinalLogSoftmax") : Case(name);
        // Every Dense and Conv layer gated too (gates start at 1: the same function), so gate gradients are checked as well.
        var net = new Network(model, gated: model.Layers.Where(l => l is DenseLayer or ConvLayer).ToHashSet());
        var ws = net.CreateWorkspace();
        var random = new Random(11);
        foreach (var gate in net.Parameters.Where(p => p.Role == ParameterRole.Gate))
            for (int i = 0; i < gate.Value.Length; i++) gate.Value[i] = 0.5f + (float)random.NextDouble();
        var x = Enumerable.Range(0, model.InputSize).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var teacher = Enumerable.Range(0, net.Classes).Select(_ => (float)random.NextDouble() * 3).ToArray();
        var grad = new float[net.Classes];
        float LossAt()
        {
            var logits = net.Forward(ws, x);
            return Loss.SoftmaxCrossEntropy(logits, 1, teacher, 0.3f, 2f, grad);
        }

        LossAt();
        ws.ClearParameterGradients();
        net.Backward(ws, grad);
        var inputGradient = net.InputGradient(ws).ToArray();
        var checks = net.Parameters.SelectMany(p => Picks(p.Value.Length, random).Select(i => (What: $"{p}[{i}]", Values: p.Value, Index: i, Analytic: ws.GradientOf(p)[i])))
            .Concat(Picks(x.Length, random).Select(i => (What: $"input[{i}]", Values: x, Index: i, Analytic: inputGradient[i])))
            .ToList();
        Assert.NotEmpty(checks);
        foreach (var (what, values, i, analytic) in checks)
        {
            // Central differences in float32: h = 1e-3 keeps rounding (~1e-7 / h) and truncation (~h^2) near 1e-4.
            const float h = 1e-3f;
            float saved = values[i];
            values[i] = saved + h;
            float up = LossAt();
            values[i] = saved - h;
            float down = LossAt();
            values[i] = saved;
            float numeric = (up - down) / (2 * h);
            Assert.True(Math.Abs(numeric - analytic) <= 2e-3 + 2e-2 * Math.Abs(numeric), $"{name}: d loss / d {what}: analytic {analytic}, finite difference {numeric}");
        }
    }

    /// <summary>
    /// A batch run together (Dense and Conv as matrix products over the batch) gives each sample the logits it gets
    /// alone, and parameter gradients equal to the sum of the samples' own (same values up to summation order).
    /// </summary>
    [Theory]
    [MemberData(nameof(Operators))]
    public void BatchesMatchSamplesOneByOne(string name)
    {
        var model = name.StartsWith("Final", StringComparison.Ordinal) ? FinalSoftmaxModel(name == "FinalLogSoftmax") : Case(name);
        var net = new Network(model, gated: model.Layers.Where(l => l is DenseLayer or ConvLayer).ToHashSet());
        var random = new Random(5);
        foreach (var gate in net.Parameters.Where(p => p.Role == ParameterRole.Gate))
            for (int i = 0; i < gate.Value.Length; i++) gate.Value[i] = 0.5f + (float)random.NextDouble();
        const int n = 5;
        var inputs = Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, model.InputSize).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray()).ToArray();
        var grad = new float[net.Classes];
        var single = net.CreateWorkspace();
        var logits = new List<float[]>();
        var inputGradients = new List<float[]>();
        single.ClearParameterGradients();
        for (int s = 0; s < n; s++)
        {
            logits.Add(net.Forward(single, inputs[s]).ToArray());
            Loss.SoftmaxCrossEntropy(logits[s], s % net.Classes, ReadOnlySpan<float>.Empty, 0f, 1f, grad);
            net.Backward(single, grad);
            inputGradients.Add(net.InputGradient(single).ToArray());
        }
        var batch = net.CreateBatch(n + 2); // room to spare: a short last batch
        batch[0].ClearParameterGradients();
        for (int s = 0; s < n; s++) inputs[s].CopyTo(net.Input(batch[s]));
        net.Forward(batch, n);
        for (int s = 0; s < n; s++)
        {
            Close(logits[s], net.Logits(batch[s]).ToArray(), $"{name}: logits of sample {s}");
            Loss.SoftmaxCrossEntropy(net.Logits(batch[s]), s % net.Classes, ReadOnlySpan<float>.Empty, 0f, 1f, grad);
            net.LogitsGradient(batch[s], grad);
        }
        net.Backward(batch, n);
        for (int s = 0; s < n; s++) Close(inputGradients[s], net.InputGradient(batch[s]).ToArray(), $"{name}: input gradient of sample {s}");
        foreach (var p in net.Parameters) Close(single.GradientOf(p), batch[0].GradientOf(p), $"{name}: gradient of {p}");
    }

    private static void Close(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5f + 1e-4f * Math.Abs(expected[i]), $"{what} [{i}]: {actual[i]}, one by one {expected[i]}");
    }

    private static IEnumerable<int> Picks(int length, Random random) => Enumerable.Range(0, Math.Min(length, 12)).Select(_ => random.Next(length)).Distinct();

    private static ModelGraph FinalSoftmaxModel(bool log)
    {
        var random = new Random(3);
        var w = Floats("W", Enumerable.Range(0, 18).Select(_ => (float)random.NextDouble() - 0.5f).ToArray(), 3, 6);
        var graph = new GraphProto
        {
            Name = "final",
            Node =
            {
                new NodeProto { OpType = "Gemm", Name = "g", Input = { "x", "W" }, Output = { "z" }, Attribute = { Int("transB", 1) } },
                new NodeProto { OpType = log ? "LogSoftmax" : "Softmax", Name = "s", Input = { "z" }, Output = { "y" }, Attribute = { Int("axis", 1) } },
            },
            Initializer = { w },
            Input = { BatchOf("x", 6) },
            Output = { BatchOf("y", 3) },
        };
        var model = GraphAnalyzer.Analyze(new OnnxModel(Model(graph), null, "final"));
        Assert.Equal("z", new Network(model).LogitsName);
        return model;
    }

    [Theory]
    [InlineData("mlp.onnx")]
    [InlineData("lenet5.onnx")]
    [InlineData("rescnn.onnx")]
    public void ForwardMatchesOnnxRuntimeOnTheFixtures(string fixture)
    {
        var model = GraphAnalyzer.Analyze(OnnxModel.Load(TestData.Fixture(fixture)));
        var net = new Network(model);
        var ws = net.CreateWorkspace();
        var images = NpyFile.Read(TestData.Fixture("data/fmnist-test-1000-x.npy")).Floats!;
        using var ort = new OrtReference(TestData.Fixture(fixture));
        const int n = 50;
        var expected = ort.Run(images[..(n * 784)], n);
        for (int i = 0; i < n; i++)
        {
            var logits = net.Forward(ws, images.AsSpan(i * 784, 784));
            for (int j = 0; j < 10; j++)
                Assert.True(Math.Abs(logits[j] - expected[i * 10 + j]) <= 1e-4f + 1e-4f * Math.Abs(expected[i * 10 + j]), $"{fixture} sample {i} logit {j}: {logits[j]} vs ONNX Runtime {expected[i * 10 + j]}");
        }
    }

    private static (Network Net, Dataset Train, Parameter First) MaskedMlp(int seed)
    {
        var model = GraphAnalyzer.Analyze(OnnxModel.Load(TestData.Fixture("mlp.onnx")));
        var first = (DenseLayer)model.Layers.First(l => l is DenseLayer);
        var random = new Random(seed);
        for (int i = 0; i < first.Weight.Length; i++) if (random.NextDouble() < 0.8) first.Weight[i] = 0f; // prune 80 %
        var net = new Network(model, new HashSet<Layer> { first });
        var train = Dataset.Load(TestData.Fixture("data/fmnist-calib-512-x.npy"), TestData.Fixture("data/fmnist-calib-512-y.npy"), [1, 28, 28], 10);
        return (net, train, net.Parameters.First(p => p.Layer == first && p.Role == ParameterRole.Weight));
    }

    [Fact]
    public void MaskedFineTuningNeverRevivesAPrunedWeight()
    {
        var (net, train, weight) = MaskedMlp(5);
        var before = (float[])weight.Value.Clone();
        var losses = Trainer.Train(net, train, null, new TrainOptions { Epochs = 2, BatchSize = 32, LearningRate = 1e-3f });
        for (int i = 0; i < before.Length; i++)
            if (before[i] == 0f) Assert.Equal(0f, weight.Value[i]);
        Assert.Contains(Enumerable.Range(0, before.Length), i => before[i] != 0f && weight.Value[i] != before[i]);
        Assert.True(losses[1] < losses[0], $"the loss did not fall: {string.Join(", ", losses)}");
    }

    [Fact]
    public void TrainingIsDeterministicForASeed()
    {
        var runs = new[] { 1, 2 }.Select(_ =>
        {
            var (net, train, weight) = MaskedMlp(5);
            Trainer.Train(net, train, null, new TrainOptions { Epochs = 1, BatchSize = 16, LearningRate = 1e-3f, Optimizer = OptimizerKind.Sgd, Seed = 42 });
            return weight.Value;
        }).ToList();
        Assert.Equal(runs[0], runs[1]);
    }

    /// <summary>
    /// The same seed gives bit-identical weights on one thread and on several: the shards of a batch and the ranges
    /// of the gradient sum and update are fixed, so thread timing cannot change any summation order. LeNet-5 (Conv,
    /// pools, Dense) with Adam, distillation off, a short last batch and a weight-pruned, masked layer.
    /// </summary>
    [Fact]
    public void TrainingGivesTheSameBitsOnOneThreadAndOnSeveral()
    {
        var runs = new[] { 1, 2, 4 }.Select(threads =>
        {
            var model = GraphAnalyzer.Analyze(OnnxModel.Load(TestData.Fixture("lenet5.onnx")));
            var dense = model.Layers.OfType<DenseLayer>().First();
            for (int i = 0; i < dense.Weight.Length; i += 3) dense.Weight[i] = 0f;
            var net = new Network(model, new HashSet<Layer> { dense });
            var train = Dataset.Load(TestData.Fixture("data/fmnist-calib-512-x.npy"), TestData.Fixture("data/fmnist-calib-512-y.npy"), [1, 28, 28], 10, maxSamples: 300);
            var losses = Trainer.Train(net, train, null, new TrainOptions { Epochs = 1, BatchSize = 64, LearningRate = 1e-3f, Seed = 3, Threads = threads });
            return (Weights: net.Parameters.SelectMany(p => p.Value).ToArray(), Loss: losses[0]);
        }).ToList();
        Assert.Equal(runs[0].Loss, runs[1].Loss);
        Assert.Equal(runs[0].Loss, runs[2].Loss);
        Assert.True(runs[0].Weights.AsSpan().SequenceEqual(runs[1].Weights), "1 and 2 threads trained different weights");
        Assert.True(runs[0].Weights.AsSpan().SequenceEqual(runs[2].Weights), "1 and 4 threads trained different weights");
    }

    /// <summary>
    /// One SGD step without momentum over a whole batch moves every weight by the learning rate times the mean of
    /// the samples' own gradients (each sample's backward pass alone): in particular the Dense weight gradients the
    /// trainer computes once per mini-batch from all shards' activations (37 samples: shards of 2 and 3, so the
    /// row offsets into each shard differ). LeNet-5 has Conv and Dense layers; the tolerance is the one for batches
    /// against samples one by one, on the gradient recovered as (before - after) / rate.
    /// </summary>
    [Fact]
    public void OneStepFollowsTheMeanOfTheSamplesGradients()
    {
        const int n = 37;
        const float rate = 0.5f;
        var model = GraphAnalyzer.Analyze(OnnxModel.Load(TestData.Fixture("lenet5.onnx")));
        var train = Dataset.Load(TestData.Fixture("data/fmnist-calib-512-x.npy"), TestData.Fixture("data/fmnist-calib-512-y.npy"), [1, 28, 28], 10, maxSamples: n);
        var net = new Network(model);
        var single = net.CreateWorkspace();
        single.ClearParameterGradients();
        var grad = new float[net.Classes];
        for (int s = 0; s < n; s++)
        {
            Loss.SoftmaxCrossEntropy(net.Forward(single, train.Sample(s)), train.Labels![s], ReadOnlySpan<float>.Empty, 0f, 1f, grad);
            net.Backward(single, grad);
        }
        var before = net.Parameters.ToDictionary(p => p, p => (float[])p.Value.Clone());
        Trainer.Train(net, train, null, new TrainOptions { Epochs = 1, BatchSize = n, LearningRate = rate, Optimizer = OptimizerKind.Sgd, Momentum = 0f, Threads = 2 });
        foreach (var p in net.Parameters)
        {
            var mean = single.GradientOf(p).Select(g => g / n).ToArray();
            var step = before[p].Zip(p.Value, (b, a) => (b - a) / rate).ToArray();
            Close(mean, step, $"step of {p}");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void TheWorkerTeamRunsEveryItemOnceAndPassesOnAFailure(int threads)
    {
        using var team = new WorkerTeam(threads);
        foreach (int count in new[] { 0, 1, 2, 16, 61 })
        {
            var runs = new int[count];
            team.For(count, i => Interlocked.Increment(ref runs[i]));
            Assert.All(runs, r => Assert.Equal(1, r));
        }
        var failure = Assert.Throws<InvalidOperationException>(() => team.For(8, i => { if (i == 5) throw new InvalidOperationException("item 5"); }));
        Assert.Equal("item 5", failure.Message);
        var again = new int[4];
        team.For(4, i => again[i]++);
        Assert.Equal([1, 1, 1, 1], again);
    }

    /// <summary>
    /// Node gates trained with the network under a strong enough L1 penalty close selectively: some gates of
    /// LeNet-5's second conv fall below the pipeline's 5 % threshold while others stay open, rather than all
    /// shrinking together. Adam moves every gate about one learning rate per update, so they first shrink in
    /// step; 20 epochs of 16 batches at penalty 0.5 let the loss gradient separate them.
    /// </summary>
    [Fact]
    public void NodeGatesCloseSelectively()
    {
        var model = GraphAnalyzer.Analyze(OnnxModel.Load(TestData.Fixture("lenet5.onnx")));
        var conv = model.Layers.OfType<ConvLayer>().Last();
        var net = new Network(model, gated: new HashSet<Layer> { conv });
        var train = Dataset.Load(TestData.Fixture("data/fmnist-calib-512-x.npy"), TestData.Fixture("data/fmnist-calib-512-y.npy"), [1, 28, 28], 10);
        Trainer.Train(net, train, null, new TrainOptions { Epochs = 20, BatchSize = 32, LearningRate = 1e-3f, GatePenalty = 0.5f });
        var gates = net.Parameters.Single(p => p.Role == ParameterRole.Gate).Value;
        float max = gates.Max();
        string all = string.Join(" ", gates.Select(g => g.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture)));
        Assert.True(gates.Any(g => g <= 0.05f * max), $"no gate closed: {all}");
        Assert.True(gates.Count(g => g >= 0.5f * max) >= 2, $"fewer than two gates stayed open: {all}");
    }
}
