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
        // Past the limit on the whole model, the per-tensor limit still holds.
        e = Assert.Throws<ScalpelException>(() => GraphAnalyzer.Analyze(OnnxModel.Load(path, long.MaxValue)));
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

    private static ModelProto Lenet() => ModelProto.Parser.ParseFrom(File.ReadAllBytes(TestData.Fixture("lenet5.onnx")));

    private static NodeProto First(ModelProto m, string op) => m.Graph.Node.First(n => n.OpType == op);

    private static void SetInts(NodeProto node, string name, params long[] values)
    {
        var a = node.Attribute.FirstOrDefault(x => x.Name == name);
        if (a is null) node.Attribute.Add(a = new AttributeProto { Name = name });
        a.Type = AttributeProto.Types.AttributeType.Ints;
        a.Ints.Clear();
        a.Ints.AddRange(values);
    }

    /// <summary>Edits of LeNet-5 that once crashed or produced code that did not compile; each must name what is wrong.</summary>
    public static readonly Dictionary<string, (Action<ModelProto> Edit, string Expected)> BadModels = new()
    {
        ["conv stride 0"] = (m => SetInts(First(m, "Conv"), "strides", 0, 0), "strides"),
        ["conv stride -1"] = (m => SetInts(First(m, "Conv"), "strides", -1, 1), "strides"),
        ["conv empty strides"] = (m => SetInts(First(m, "Conv"), "strides"), "strides"),
        ["conv dilation 0"] = (m => SetInts(First(m, "Conv"), "dilations", 1, 0), "dilations"),
        ["conv one pad"] = (m => SetInts(First(m, "Conv"), "pads", 2), "pads"),
        ["conv negative pad"] = (m => SetInts(First(m, "Conv"), "pads", -2, 2, 2, 2), "pads"),
        ["conv kernel_shape mismatch"] = (m => SetInts(First(m, "Conv"), "kernel_shape", 0, 0), "kernel_shape"),
        ["pool kernel 0"] = (m => SetInts(First(m, "MaxPool"), "kernel_shape", 0, 2), "kernel_shape"),
        ["pool stride 0"] = (m => SetInts(First(m, "MaxPool"), "strides", 2, 0), "strides"),
        ["pool huge kernel"] = (m => SetInts(First(m, "MaxPool"), "kernel_shape", 1L << 40, 2), "kernel_shape"),
        ["flatten axis 2^40"] = (m => First(m, "Flatten").Attribute.Single(a => a.Name == "axis").I = 1L << 40, "axis"),
        ["conv group as a list"] = (m => SetInts(First(m, "Conv"), "group", 1), "attribute 'group' is declared Ints"),
        ["gemm transB as a float"] = (m => First(m, "Gemm").Attribute.Single(a => a.Name == "transB").Type = AttributeProto.Types.AttributeType.Float, "attribute 'transB' is declared Float"),
        ["duplicate attribute"] = (m => First(m, "Conv").Attribute.Add(new AttributeProto { Name = "group", I = 1, Type = AttributeProto.Types.AttributeType.Int }), "'group' twice"),
        ["concat without inputs"] = (m => { var f = First(m, "Flatten"); f.OpType = "Concat"; f.Input.Clear(); }, "no inputs"),
        ["constant without output"] = (m => m.Graph.Node.Add(new NodeProto { OpType = "Constant", Name = "k", Attribute = { new AttributeProto { Name = "value_float", F = 1, Type = AttributeProto.Types.AttributeType.Float } } }), "'k'"),
        ["constant with empty value"] = (m => m.Graph.Node.Add(new NodeProto { OpType = "Constant", Name = "k", Output = { "kv" }, Attribute = { new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor } } }), "empty value"),
        ["constant without value"] = (m => m.Graph.Node.Add(new NodeProto { OpType = "Constant", Name = "k", Output = { "kv" } }), "'k'"),
        ["input of 20000x20000"] = (m =>
        {
            var dims = m.Graph.Input[0].Type.TensorType.Shape.Dim;
            dims[2].DimValue = 20000;
            dims[3].DimValue = 20000;
        }, "20000"),
        ["broadcast past int"] = (m =>
        {
            // [N,6,28,28] + a constant [1,600000,1,1,1] broadcast to [1,600000,6,28,28]: more elements than an int counts.
            var relu = First(m, "Relu");
            m.Graph.Initializer.Add(new TensorProto { Name = "wide", DataType = 1, Dims = { 1, 600000, 1, 1, 1 }, RawData = ByteString.CopyFrom(new byte[600000 * 4]) });
            m.Graph.Node.Insert(m.Graph.Node.IndexOf(relu), new NodeProto { OpType = "Add", Name = "widen", Input = { relu.Input[0], "wide" }, Output = { "widened" } });
            relu.Input[0] = "widened";
        }, "widen"),
        ["input dims overflow"] = (m => m.Graph.Input[0].Type.TensorType.Shape.Dim[2].DimValue = 1L << 40, "input"),
        ["opset 1"] = (m => m.OpsetImport[0].Version = 1, "opset 1"),
        ["opset 99"] = (m => m.OpsetImport[0].Version = 99, "opset 99"),
        ["no opset"] = (m => m.OpsetImport.Clear(), "no opset"),
        ["duplicate initializer"] = (m => m.Graph.Initializer.Add(m.Graph.Initializer[0].Clone()), "two initializers"),
        ["no node output"] = (m => First(m, "Relu").Output[0] = "", "Relu"),
        ["nan weight"] = (m =>
        {
            var w = m.Graph.Initializer.First(t => t.Dims.Count == 4);
            var raw = w.RawData.ToByteArray();
            BitConverter.GetBytes(float.NaN).CopyTo(raw, 4 * 7);
            w.RawData = ByteString.CopyFrom(raw);
        }, "index 7"),
        ["infinite weight"] = (m =>
        {
            var w = m.Graph.Initializer.First(t => t.Dims.Count == 2);
            var raw = w.RawData.ToByteArray();
            BitConverter.GetBytes(float.NegativeInfinity).CopyTo(raw, 0);
            w.RawData = ByteString.CopyFrom(raw);
        }, "index 0"),
    };

    public static TheoryData<string> BadModelNames() => [.. BadModels.Keys];

    [Theory]
    [MemberData(nameof(BadModelNames))]
    public void MalformedAttributesAndShapesAreErrorsNamingTheProblem(string name)
    {
        var proto = Lenet();
        BadModels[name].Edit(proto);
        var path = Write(proto.ToByteArray());
        var e = Assert.ThrowsAny<ScalpelException>(() => GraphAnalyzer.Analyze(OnnxModel.Load(path)));
        Assert.Contains(path, e.Message);
        Assert.Contains(BadModels[name].Expected, e.Message);
        Assert.Null(e.InnerException as NullReferenceException);
    }

    /// <summary>A BatchNorm whose epsilon is declared a list is not folded with a misread epsilon: analysis names it.</summary>
    [Fact]
    public void BatchNormAttributeOfTheWrongTypeNamesTheNode()
    {
        var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(TestData.Fixture("rescnn.onnx")));
        var bn = First(proto, "BatchNormalization");
        bn.Attribute.Single(a => a.Name == "epsilon").Type = AttributeProto.Types.AttributeType.Ints;
        var path = Write(proto.ToByteArray());
        var e = Assert.ThrowsAny<ScalpelException>(() => GraphAnalyzer.Analyze(OnnxModel.Load(path)));
        Assert.Contains(bn.Name, e.Message);
        Assert.Contains("attribute 'epsilon' is declared Ints", e.Message);
    }

    [Fact]
    public void ClipWithAVectorMinNamesTheNode()
    {
        var proto = Lenet();
        var relu = First(proto, "Relu");
        relu.OpType = "Clip";
        relu.Input.Add("clip_min");
        proto.Graph.Initializer.Add(new TensorProto { Name = "clip_min", DataType = (int)TensorProto.Types.DataType.Float, Dims = { 2 }, FloatData = { 0, 1 } });
        var path = Write(proto.ToByteArray());
        var e = Assert.Throws<UnsupportedModelException>(() => GraphAnalyzer.Analyze(OnnxModel.Load(path)));
        Assert.Contains(relu.Name, e.Message);
        Assert.Contains("scalar", e.Message);
    }

    [Fact]
    public void TotalDeclaredBytesAreLimitedAndTheLimitCanBeRaised()
    {
        var proto = Lenet();
        var path = Write(proto.ToByteArray());
        long bytes = proto.Graph.Initializer.Sum(TensorReader.DeclaredBytes);
        var e = Assert.Throws<ScalpelException>(() => OnnxModel.Load(path, bytes - 1));
        Assert.Contains("--max-model-bytes", e.Message);
        GraphAnalyzer.Analyze(OnnxModel.Load(path, bytes));
        // Four 1 GiB tensors: refused before anything is read.
        for (int i = 0; i < 4; i++)
            proto.Graph.Initializer.Add(new TensorProto { Name = $"big{i}", DataType = 1, Dims = { 1 << 28 }, DataLocation = TensorProto.Types.DataLocation.External, ExternalData = { new StringStringEntryProto { Key = "location", Value = "big.bin" } } });
        Assert.Contains("--max-model-bytes", Assert.Throws<ScalpelException>(() => OnnxModel.Load(Write(proto.ToByteArray()))).Message);
    }
}
