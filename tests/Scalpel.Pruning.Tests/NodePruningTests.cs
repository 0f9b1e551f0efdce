using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Pruning.Calibration;
using Scalpel.Pruning.Data;
using Scalpel.Pruning.Methods;
using Xunit;
using Xunit.Abstractions;

namespace Scalpel.Tests;

public sealed class NodePruningTests(ITestOutputHelper output)
{
    private static Dataset Images(int n) =>
        Dataset.Load(Path.Combine(TestData.Fixtures, "data", "fmnist-test-1000-x.npy"), Path.Combine(TestData.Fixtures, "data", "fmnist-test-1000-y.npy"), [1, 28, 28]).Take(n);

    [Fact]
    public void ResidualCnnGroupsStopAtTheResidualAdds()
    {
        var onnx = OnnxModel.Load(TestData.Fixture("rescnn.onnx"));
        var groups = NodePruning.Find(onnx.Proto, GraphAnalyzer.Analyze(onnx));
        // Only the first conv of each residual block can lose channels: the others feed an Add.
        Assert.Equal(["/2/body/body.0/body.0.0/Conv", "/3/body/body.0/body.0.0/Conv"], groups.Select(g => g.ProducerName));
        Assert.All(groups, g => Assert.Equal("Conv", g.Consumer.OpType));
    }

    [Fact]
    public void KeepingEveryChannelChangesNothingAndRemovingSomeStaysAValidSmallerModel()
    {
        var onnx = OnnxModel.Load(TestData.Fixture("rescnn.onnx"));
        var model = GraphAnalyzer.Analyze(onnx);
        var data = Images(200);
        var reference = Accuracy.Logits(onnx.Proto, data);
        foreach (var g in NodePruning.Find(onnx.Proto, model))
        {
            var same = onnx.Proto.Clone();
            NodePruning.Apply(same, g, Enumerable.Range(0, g.Channels).ToArray());
            Assert.Equal(reference, Accuracy.Logits(same, data));

            var smaller = onnx.Proto.Clone();
            var keep = Enumerable.Range(0, g.Channels).Where(c => c % 4 != 0).ToArray();
            NodePruning.Apply(smaller, g, keep);
            var analyzed = GraphAnalyzer.Analyze(new OnnxModel(smaller, null, "smaller"));
            var producer = analyzed.Layers.OfType<ConvLayer>().Single(l => l.Name == g.ProducerName);
            Assert.Equal(keep.Length, producer.M);
            double agreement = Accuracy.Score(Accuracy.Top1(Accuracy.Logits(smaller, data), data.Count), Accuracy.Top1(reference, data.Count));
            output.WriteLine($"{g.ProducerName}: {keep.Length}/{g.Channels} channels kept, top-1 agreement {agreement:P1}");
        }
    }
}
