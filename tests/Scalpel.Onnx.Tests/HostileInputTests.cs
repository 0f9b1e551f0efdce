using Google.Protobuf;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;
using Xunit;

namespace Scalpel.Tests;

/// <summary>Bad and hostile models: each is a clear ScalpelException naming the file (and node or tensor), never a crash.</summary>
public sealed class HostileInputTests
{
    private static byte[] MlpBytes => File.ReadAllBytes(TestData.Fixture("mlp.onnx"));

    private static string Write(byte[] bytes, string name = "bad.onnx")
    {
        var path = Path.Combine(TestData.TempDir(), name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void MissingFileNamesThePath()
    {
        var e = Assert.Throws<ScalpelException>(() => OnnxModel.Load("/nonexistent/model.onnx"));
        Assert.Contains("/nonexistent/model.onnx", e.Message);
    }

    [Fact]
    public void TruncatedFileIsAClearError()
    {
        var bytes = MlpBytes;
        var path = Write(bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<ScalpelException>(() => GraphAnalyzer.Analyze(OnnxModel.Load(path)));
        Assert.Contains(path, e.Message);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void RandomBytesAreAClearError(int seed)
    {
        var bytes = new byte[4096];
        new Random(seed).NextBytes(bytes);
        var path = Write(bytes);
        var e = Assert.ThrowsAny<ScalpelException>(() => GraphAnalyzer.Analyze(OnnxModel.Load(path)));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void UnsupportedOperatorNamesTheOperatorTheNodeAndTheSupportedList()
    {
        var proto = ModelProto.Parser.ParseFrom(MlpBytes);
        var relu = proto.Graph.Node.First(n => n.OpType == "Relu");
        relu.OpType = "Gelu";
        relu.Name = "my_activation";
        var path = Write(proto.ToByteArray());
        var e = Assert.Throws<UnsupportedModelException>(() => GraphAnalyzer.Analyze(OnnxModel.Load(path)));
        Assert.Contains("'Gelu'", e.Message);
        Assert.Contains("my_activation", e.Message);
        Assert.Contains("Supported: Gemm, MatMul, Conv", e.Message);
    }

    [Fact]
    public void TensorClaimingTerabytesIsRefusedBeforeAllocating()
    {
        var proto = ModelProto.Parser.ParseFrom(MlpBytes);
        var init = proto.Graph.Initializer[0];
        init.Dims.Clear();
        init.Dims.Add(1L << 20);
        init.Dims.Add(1L << 20);
        var path = Write(proto.ToByteArray());
        var e = Assert.Throws<ScalpelException>(() => GraphAnalyzer.Analyze(OnnxModel.Load(path)));
        Assert.Contains(init.Name, e.Message);
        Assert.Contains("claims", e.Message);
    }

    [Fact]
    public void DataShorterThanTheShapeIsAClearError()
    {
        var proto = ModelProto.Parser.ParseFrom(MlpBytes);
        var init = proto.Graph.Initializer[0];
        init.RawData = ByteString.CopyFrom(init.RawData.Span[..100]);
        var path = Write(proto.ToByteArray());
        var e = Assert.Throws<ScalpelException>(() => GraphAnalyzer.Analyze(OnnxModel.Load(path)));
        Assert.Contains(init.Name, e.Message);
    }

    [Fact]
    public void DeeplyNestedMessagesAreRefused()
    {
        // A graph attribute nested 200 deep: protobuf's recursion limit stops it with a parse error.
        var graph = new GraphProto { Name = "g" };
        for (int i = 0; i < 200; i++)
        {
            var node = new NodeProto { OpType = "If" };
            node.Attribute.Add(new AttributeProto { Name = "then_branch", G = graph, Type = AttributeProto.Types.AttributeType.Graph });
            graph = new GraphProto { Name = "g", Node = { node } };
        }
        var model = new ModelProto { IrVersion = 8, Graph = graph };
        var path = Write(model.ToByteArray());
        Assert.Throws<ScalpelException>(() => OnnxModel.Load(path));
    }

    [Fact]
    public void CycleInTheGraphIsAClearError()
    {
        var proto = ModelProto.Parser.ParseFrom(MlpBytes);
        var first = proto.Graph.Node[1];
        var last = proto.Graph.Node[^1];
        first.Input[0] = last.Output[0];
        var path = Write(proto.ToByteArray());
        var e = Assert.ThrowsAny<ScalpelException>(() => GraphAnalyzer.Analyze(OnnxModel.Load(path)));
        Assert.Contains("cycle", e.Message);
    }
}
