using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Xunit;

namespace Scalpel.Tests;

public sealed class ShapeInferenceTests
{
    [Fact]
    public void ResidualCnnShapesHaveASymbolicBatchAndFoldedBatchNorm()
    {
        var model = GraphAnalyzer.Analyze(OnnxModel.Load(TestData.Fixture("rescnn.onnx")));
        Assert.Equal(BatchMode.PerSample, model.BatchMode);
        Assert.Equal("[N,1,28,28]", Shape.Format(model.InputShape, symbolicBatch: true));
        Assert.Equal("[N,10]", Shape.Format(model.OutputShape, symbolicBatch: true));
        Assert.Equal(784, model.InputSize);
        Assert.DoesNotContain(model.Layers, l => l is ScaleShiftLayer);
        var convs = model.Layers.OfType<ConvLayer>().ToList();
        Assert.Contains(convs, c => c.Window.StrideH == 2 && c.Window.OH == 14 && c.M == 32);
        Assert.Contains(model.Layers, l => l is GlobalPoolLayer { IsMax: false, Spatial: 196 });
        Assert.Contains(model.Layers, l => l is BinaryLayer { Op: BinaryOp.Add });
    }

    [Fact]
    public void LeNetPoolsHalveTheSpatialSize()
    {
        var model = GraphAnalyzer.Analyze(OnnxModel.Load(TestData.Fixture("lenet5.onnx")));
        var shapes = model.Layers.Select(l => Shape.Format(l.OutputShape, true)).ToList();
        Assert.Equal(["[N,6,28,28]", "[N,6,14,14]", "[N,16,10,10]", "[N,16,5,5]", "[N,400]", "[N,120]", "[N,84]", "[N,10]"], shapes);
        // Relu is fused into the conv and dense epilogues.
        Assert.All(model.Layers.OfType<ConvLayer>(), c => Assert.Equal(Activation.Relu, c.Activation));
    }

    [Fact]
    public void BroadcastFollowsNumpyRules()
    {
        Assert.Equal([2, 3, 4], Shape.Broadcast([2, 1, 4], [3, 1])!);
        Assert.Equal([5], Shape.Broadcast([5], [])!);
        Assert.Null(Shape.Broadcast([2, 3], [4, 3]));
        Assert.Equal([0, 1, 0], Shape.BroadcastStrides([3, 1], [2, 3, 4]));
    }
}
