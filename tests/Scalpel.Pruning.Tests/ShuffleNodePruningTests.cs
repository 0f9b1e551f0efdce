using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;
using Scalpel.Pruning.Calibration;
using Scalpel.Pruning.Data;
using Scalpel.Pruning.Methods;
using Scalpel.Pruning.Training;
using Xunit;
using static Scalpel.Tests.OnnxGraphs;

namespace Scalpel.Tests;

/// <summary>
/// Node pruning on a ShuffleNet-style model (issue 16): channels that flow into a Split, a Concat or a channel shuffle
/// (Reshape, Transpose, Reshape computed by a shape subgraph) are left alone with a reason; the groups it does prune
/// give a model that ONNX Runtime still runs (its shape subgraph recomputes the shapes) and that the generated code matches.
/// </summary>
public sealed class ShuffleNodePruningTests
{
    private static Dataset Images(int n) =>
        Dataset.Load(Path.Combine(TestData.Fixtures, "data", "fmnist-test-1000-x.npy"), Path.Combine(TestData.Fixtures, "data", "fmnist-test-1000-y.npy"), [1, 28, 28]).Take(n);

    private static ModelProto ShuffleModel()
    {
        var rng = new Random(3);
        float[] W(int n) => Enumerable.Range(0, n).Select(_ => rng.NextSingle() - 0.5f).ToArray();
        var graph = new GraphProto { Name = "shufflecnn", Input = { BatchOf("x", 1, 28, 28) }, Output = { BatchOf("y", 10) } };
        graph.Initializer.Add(Floats("wa", W(8 * 9), 8, 1, 3, 3));
        graph.Initializer.Add(Floats("wb", W(16), 4, 4, 1, 1));
        graph.Initializer.Add(Floats("wc", W(64), 8, 8, 1, 1));
        graph.Initializer.Add(Floats("bc", W(8), 8));
        graph.Initializer.Add(Floats("wd", W(48), 6, 8, 1, 1));
        graph.Initializer.Add(Floats("wf", W(60), 10, 6));
        graph.Initializer.Add(Longs("split", [4, 4]));
        graph.Initializer.Add(LongScalar("zero", 0));
        graph.Initializer.Add(Longs("axes0", [0]));
        graph.Initializer.Add(Longs("groups", [2, 4, 14, 14]));
        graph.Initializer.Add(Longs("rest", [8, 14, 14]));
        graph.Node.Add(Node("Conv", ["x", "wa"], "a", Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1)));
        graph.Node.Add(Node("Relu", ["a"], "ar"));
        var split = Node("Split", ["ar", "split"], "s0", Int("axis", 1));
        split.Output.Add("s1");
        graph.Node.Add(split);
        graph.Node.Add(Node("Conv", ["s1", "wb"], "b"));
        graph.Node.Add(Node("Relu", ["b"], "br"));
        graph.Node.Add(Node("Concat", ["s0", "br"], "cat", Int("axis", 1)));
        graph.Node.Add(BatchSize("cat", "n1"));
        graph.Node.Add(Node("Concat", ["n1", "groups"], "shape1", Int("axis", 0)));
        graph.Node.Add(Node("Reshape", ["cat", "shape1"], "grouped"));
        graph.Node.Add(Node("Transpose", ["grouped"], "swapped", Ints("perm", 0, 2, 1, 3, 4)));
        graph.Node.Add(BatchSize("swapped", "n2"));
        graph.Node.Add(Node("Concat", ["n2", "rest"], "shape2", Int("axis", 0)));
        graph.Node.Add(Node("Reshape", ["swapped", "shape2"], "shuffled"));
        graph.Node.Add(Node("Conv", ["shuffled", "wc", "bc"], "c"));
        graph.Node.Add(Node("Relu", ["c"], "cr"));
        graph.Node.Add(Node("Conv", ["cr", "wd"], "d"));
        graph.Node.Add(Node("GlobalAveragePool", ["d"], "pooled"));
        graph.Node.Add(Node("Flatten", ["pooled"], "flat"));
        graph.Node.Add(Node("Gemm", ["flat", "wf"], "y", Int("transB", 1)));
        return Model(graph);
    }

    [Fact]
    public void RetrainingRefusesAnActivationItHasNoGradientFor()
    {
        // Retraining knew five activations; a HardSwish must be refused by name, not run as an identity.
        var graph = new GraphProto { Name = "mlp", Input = { BatchOf("x", 4) }, Output = { BatchOf("y", 2) } };
        graph.Initializer.Add(Floats("w1", Enumerable.Repeat(0.1f, 12), 4, 3));
        graph.Initializer.Add(Floats("w2", Enumerable.Repeat(0.1f, 6), 3, 2));
        graph.Node.Add(Node("Gemm", ["x", "w1"], "h"));
        graph.Node.Add(Node("HardSwish", ["h"], "a"));
        graph.Node.Add(Node("Gemm", ["a", "w2"], "y"));
        var proto = Model(graph);
        proto.OpsetImport[0].Version = 14;
        var analyzed = GraphAnalyzer.Analyze(new OnnxModel(proto, null, "hardswish"));
        var e = Assert.Throws<UnsupportedModelException>(() => new Network(analyzed));
        Assert.Contains("'node_a' (HardSwish) cannot be retrained", e.Message);
    }

    [Fact]
    public void ChannelsThroughSplitConcatAndShuffleAreLeftAloneAndTheRestPrunesToAValidModel()
    {
        var proto = ShuffleModel();
        var analyzed = GraphAnalyzer.Analyze(new OnnxModel(proto, null, "shuffle"));
        var groups = NodePruning.Find(proto, analyzed);
        Assert.Equal(["node_c", "node_d"], groups.Select(g => g.ProducerName));
        string Reason(string name) => NodePruning.LeftAloneReason(analyzed, analyzed.Layers.Single(l => l.Name == name))!;
        Assert.Contains("Split 'node_s0'", Reason("node_a"));
        Assert.Contains("Concat 'node_cat'", Reason("node_b"));
        Assert.Null(NodePruning.LeftAloneReason(analyzed, analyzed.Layers.Single(l => l.Name == "node_c")));

        var data = Images(64);
        var pruned = proto.Clone();
        foreach (var g in NodePruning.Find(pruned, analyzed))
            NodePruning.Apply(pruned, g, Enumerable.Range(0, g.Channels).Where(c => c % 3 != 0).ToArray());
        // ONNX Runtime runs the pruned model, shape subgraph included; the generated code agrees with it.
        var expected = Accuracy.Logits(pruned, data);
        var prunedGraph = GraphAnalyzer.Analyze(new OnnxModel(pruned, null, "pruned"));
        Assert.Equal(5, prunedGraph.Layers.OfType<ConvLayer>().Single(l => l.Name == "node_c").M);
        var code = CSharpEmitter.Emit(prunedGraph, new EmitOptions("PrunedShuffle", "M", CodeTarget.Resolve("x64-avx2"), "pruned"));
        var run = GeneratedAssembly.CompileOne(code, "PrunedShuffle");
        var actual = new float[expected.Length];
        run(data.Inputs, actual, data.Count);
        // 1e-4: sums of up to 72 products of values below 1 in another order than ONNX Runtime; a wrong channel is off by far more.
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-4f * (1 + Math.Abs(expected[i])), $"element {i} is {actual[i]}, ONNX Runtime {expected[i]}");
    }
}
