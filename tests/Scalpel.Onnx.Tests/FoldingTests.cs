using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;
using Xunit;
using static Scalpel.Tests.OnnxGraphs;

namespace Scalpel.Tests;

/// <summary>
/// Constant folding before analysis (issue 16): shape subgraphs and static arithmetic leave no layer, int64 values stay
/// exact, the symbolic batch size is accepted only where it cannot mix samples, and hostile sizes are refused by name.
/// </summary>
public sealed class FoldingTests
{
    private static ModelGraph Analyze(int[] input, int[] output, NodeProto[] nodes, params TensorProto[] initializers)
    {
        var graph = new GraphProto { Name = "fold", Input = { BatchOf("x", input) }, Output = { BatchOf("y", output) } };
        graph.Node.AddRange(nodes);
        graph.Initializer.AddRange(initializers);
        return GraphAnalyzer.Analyze(new OnnxModel(Model(graph), null, "fold.onnx"));
    }

    private static readonly TensorProto[] BatchConstants = [LongScalar("zero", 0), Longs("axes0", [0], 1)];

    [Fact]
    public void ShapeSubgraphFoldsAndTheBatchSizeMayLeadAReshape()
    {
        // x.view(x.size(0), -1) with the second dimension computed as C*H*W from the shape: Mul of two Gathers.
        var graph = Analyze([2, 3, 4], [24],
        [
            .. BatchSize("x", "n"),
            Node("Shape", ["x"], "s"),
            Node("Gather", ["s", "one1"], "c"),
            Node("Gather", ["s", "two"], "h"),
            Node("Gather", ["s", "three"], "w"),
            Node("Mul", ["c", "h"], "ch"),
            Node("Mul", ["ch", "w"], "size"),
            Node("Unsqueeze", ["size", "axes0"], "size1"),
            Node("Concat", ["n", "size1"], "target", Int("axis", 0)),
            Node("Reshape", ["x", "target"], "y"),
        ], [.. BatchConstants, LongScalar("one1", 1), LongScalar("two", 2), LongScalar("three", 3)]);
        var layer = Assert.Single(graph.Layers);
        Assert.IsType<ReshapeLayer>(layer);
        Assert.Equal([1, 24], graph.OutputShape);
    }

    [Fact]
    public void BatchSizeTimesAValueIsRefusedAsMixingSamples()
    {
        var e = Assert.Throws<UnsupportedModelException>(() => Analyze([2, 3], [3],
        [
            .. BatchSize("x", "n"),
            Node("Mul", ["n", "two"], "n2"),
            Node("Concat", ["n2", "three"], "target", Int("axis", 0)),
            Node("Reshape", ["x", "target"], "y"),
        ], [.. BatchConstants, Longs("two", [2], 1), Longs("three", [3], 1)]));
        Assert.Contains("node_y", e.Message);
        Assert.Contains("batch", e.Message);
    }

    [Fact]
    public void BatchSizeOutsideAReshapeIsRefused()
    {
        var e = Assert.Throws<UnsupportedModelException>(() => Analyze([4], [4],
        [
            .. BatchSize("x", "n"),
            Node("Concat", ["n", "four"], "dims", Int("axis", 0)),
            Node("ConstantOfShape", ["dims"], "ones"),
            Node("Add", ["x", "ones"], "y"),
        ], [.. BatchConstants, Longs("four", [4], 1)]));
        Assert.Contains("node_ones", e.Message);
        Assert.Contains("symbolic batch size", e.Message);
    }

    [Fact]
    public void Int64ValuesStayExact()
    {
        // 2^40 + 1 - 2^40 is 1 in int64; in float32 it would be 0 and the Slice would be empty.
        var graph = Analyze([8], [1],
        [
            Node("Sub", ["big1", "big"], "end"),
            Node("Slice", ["x", "begin", "end", "axis1"], "y"),
        ], Longs("big1", [(1L << 40) + 1], 1), Longs("big", [1L << 40], 1), Longs("begin", [0], 1), Longs("axis1", [1], 1));
        Assert.Equal([1, 1], graph.OutputShape);
    }

    [Fact]
    public void ConstantArithmeticFoldsIntoTheOperand()
    {
        // (c / 4) ^ 2 on constants is one constant: the only layer is the Mul of x by it.
        var graph = Analyze([3], [3],
        [
            Node("Div", ["c", "four"], "q"),
            Node("Pow", ["q", "two"], "p"),
            Node("Mul", ["x", "p"], "y"),
        ], Floats("c", [4f, 8f, -12f], 3), Floats("four", [4f]), Floats("two", [2f]));
        var mul = Assert.IsType<BinaryLayer>(Assert.Single(graph.Layers));
        Assert.Equal([1f, 4f, 9f], mul.B.Constant!.Data);
    }

    [Fact]
    public void HugeRangeIsRefusedByName()
    {
        var e = Assert.Throws<UnsupportedModelException>(() => Analyze([4], [4],
        [
            Node("Range", ["start", "limit", "delta"], "r"),
            Node("Cast", ["r"], "rf", Int("to", 1)),
            Node("Add", ["x", "rf"], "y"),
        ], LongScalar("start", 0), LongScalar("limit", 1L << 40), LongScalar("delta", 1)));
        Assert.Contains("node_r", e.Message);
        Assert.Contains("at most", e.Message);
    }

    [Fact]
    public void HugeConstantOfShapeIsRefusedBeforeAllocating()
    {
        var e = Assert.Throws<UnsupportedModelException>(() => Analyze([4], [4],
        [
            Node("ConstantOfShape", ["dims"], "zeros"),
            Node("Add", ["x", "zeros"], "y"),
        ], Longs("dims", [1 << 20, 1 << 20, 4], 3)));
        Assert.Contains("node_zeros", e.Message);
        Assert.Contains("at most", e.Message);
    }

    [Fact]
    public void HugeResizeIsRefusedByName()
    {
        var e = Assert.Throws<UnsupportedModelException>(() => Analyze([1, 4, 4], [1, 4, 4],
        [
            Node("Resize", ["x", "", "scales"], "y"),
        ], Floats("scales", [1f, 1f, 1e9f, 1e9f], 4)));
        Assert.Contains("node_y", e.Message);
        Assert.Contains("output size", e.Message);
        // Each axis within the limit, the whole output not: refused before a table of 2^25 indices is built.
        e = Assert.Throws<UnsupportedModelException>(() => Analyze([1, 4, 4], [1, 4, 4],
        [
            Node("Resize", ["x", "", "scales"], "y"),
        ], Floats("scales", [1f, 1f, 1f, 1 << 23], 4)));
        Assert.Contains("output size must be at most", e.Message);
    }

    [Fact]
    public void RuntimeShapeArithmeticNamesTheOperator()
    {
        var e = Assert.Throws<UnsupportedModelException>(() => Analyze([4], [4], [Node("Floor", ["x"], "y")]));
        Assert.Contains("node_y", e.Message);
        Assert.Contains("Floor only on constants", e.Message);
    }

    [Fact]
    public void UnsupportedOperatorNamesTheNearestRewrite()
    {
        var e = Assert.Throws<UnsupportedModelException>(() => Analyze([4, 2, 2], [1, 4, 4], [Node("DepthToSpace", ["x"], "y", Int("blocksize", 2))]));
        Assert.Contains("'DepthToSpace'", e.Message);
        Assert.Contains("node_y", e.Message);
        Assert.Contains("Nearest supported rewrite: Reshape, Transpose and Reshape", e.Message);
    }

    [Fact]
    public void PadOfZerosIsNoWork()
    {
        // PyTorch 1.13 writes one before each AvgPool2d (DenseNet's transitions): it becomes an alias, not a copy.
        var graph = Analyze([2, 3, 3], [2, 3, 3], [Node("Pad", ["x", "pads"], "y")], Longs("pads", [0, 0, 0, 0, 0, 0, 0, 0]));
        Assert.IsType<ReshapeLayer>(Assert.Single(graph.Layers));
        var padded = Analyze([2, 3, 3], [2, 5, 4], [Node("Pad", ["x", "pads"], "y")], Longs("pads", [0, 0, 1, 0, 0, 0, 1, 1]));
        Assert.Equal([1, 2, 5, 4], Assert.IsType<PadLayer>(Assert.Single(padded.Layers)).OutputShape);
    }

    [Fact]
    public void TransposeOfTheBatchAxisIsRefused()
    {
        var e = Assert.Throws<UnsupportedModelException>(() => Analyze([3], [3], [Node("Transpose", ["x"], "y", Ints("perm", 1, 0))]));
        Assert.Contains("batch", e.Message);
    }
}
