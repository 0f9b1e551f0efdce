using Google.Protobuf;
using Scalpel.Onnx;
using Scalpel.Onnx.Proto;
using Xunit;

namespace Scalpel.Tests;

public sealed class ModelIoTests
{
    private static string Mlp => TestData.Fixture("mlp.onnx");

    [Fact]
    public void SaveThenLoadGivesTheSameModelAndOnnxRuntimeAgrees()
    {
        var dir = TestData.TempDir();
        var model = OnnxModel.Load(Mlp);
        var copy = Path.Combine(dir, "copy.onnx");
        model.Save(copy);
        var reloaded = OnnxModel.Load(copy);
        Assert.Equal(model.Proto, reloaded.Proto);

        var input = Enumerable.Range(0, 784).Select(i => (i % 17) / 17f).ToArray();
        using var a = new OrtReference(Mlp);
        using var b = new OrtReference(copy);
        Assert.Equal(a.Run(input, 1), b.Run(input, 1));
    }

    [Fact]
    public void RoundTripKeepsFieldsOutsideTheSchemaSubset()
    {
        // Field 99 of ModelProto and field 900 of NodeProto are unknown to Scalpel's schema subset.
        var original = File.ReadAllBytes(Mlp);
        var proto = ModelProto.Parser.ParseFrom(original);
        var node = proto.Graph.Node[0];
        var nodeBytes = node.ToByteArray().Concat(UnknownField(900, "node extra"u8.ToArray())).ToArray();
        proto.Graph.Node[0] = NodeProto.Parser.ParseFrom(nodeBytes);
        var withUnknown = proto.ToByteArray().Concat(UnknownField(99, "model extra"u8.ToArray())).ToArray();

        var model = OnnxModel.Load(new MemoryStream(withUnknown));
        var saved = new MemoryStream();
        model.Save(saved);
        var bytes = saved.ToArray();
        Assert.True(Contains(bytes, UnknownField(99, "model extra"u8.ToArray())));
        Assert.True(Contains(bytes, UnknownField(900, "node extra"u8.ToArray())));
    }

    [Fact]
    public void ExternalDataInsideTheModelFolderIsRead()
    {
        var dir = TestData.TempDir();
        var path = WithExternalWeight(dir, "weights/fc1.bin", out var expected);
        var graph = OnnxGraph.Load(path);
        var name = graph.Model.Proto.Graph.Initializer[0].Name;
        Assert.Equal(expected, graph.Constant(name).Data);
    }

    [Theory]
    [InlineData("../outside.bin")]
    [InlineData("weights/../../outside.bin")]
    [InlineData("/etc/passwd")]
    public void ExternalDataOutsideTheModelFolderIsRefused(string location)
    {
        var dir = TestData.TempDir();
        var path = WithExternalWeight(dir, "weights/fc1.bin", out _, location);
        var graph = OnnxGraph.Load(path);
        var name = graph.Model.Proto.Graph.Initializer[0].Name;
        var e = Assert.Throws<ScalpelException>(() => graph.Constant(name));
        Assert.Contains("outside the model's folder", e.Message);
        Assert.Contains(location, e.Message);
    }

    [Fact]
    public void ExternalDataThroughASymbolicLinkIsRefused()
    {
        var dir = TestData.TempDir();
        var path = WithExternalWeight(dir, "weights/fc1.bin", out _, "weights/link.bin");
        File.CreateSymbolicLink(Path.Combine(dir, "weights", "link.bin"), Path.Combine(Path.GetDirectoryName(dir)!, "outside.bin"));
        AssertRefused(path, "symbolic link");

        // A linked folder on the way is refused just the same.
        var other = TestData.TempDir();
        File.Copy(Path.Combine(dir, "weights", "fc1.bin"), Path.Combine(other, "fc1.bin"));
        Directory.CreateSymbolicLink(Path.Combine(dir, "linked"), other);
        path = WithExternalWeight(dir, "weights/fc1.bin", out _, "linked/fc1.bin");
        AssertRefused(path, "symbolic link");
    }

    [Fact]
    public async Task ExternalDataFromAFifoIsRefusedWithoutBlocking()
    {
        var dir = TestData.TempDir();
        var path = WithExternalWeight(dir, "weights/fc1.bin", out _, "weights/fifo.bin");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", Path.Combine(dir, "weights", "fifo.bin")))
            mkfifo.WaitForExit();
        var load = Task.Run(() => AssertRefused(path, "fifo.bin"));
        await load.WaitAsync(TimeSpan.FromSeconds(30)); // throws TimeoutException if reading the FIFO blocked
    }

    [Theory]
    [InlineData("offset", "abc")]
    [InlineData("offset", "73786976294838206464")]
    [InlineData("offset", "-4")]
    [InlineData("offset", " 4")]
    [InlineData("offset", "4L")]
    [InlineData("offset", "+4")]
    [InlineData("offset", "9223372036854775807")]
    [InlineData("length", "1e3")]
    [InlineData("length", "")]
    public void ExternalOffsetAndLengthAreParsedStrictly(string key, string value)
    {
        var dir = TestData.TempDir();
        var path = WithExternalWeight(dir, "weights/fc1.bin", out _);
        var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        proto.Graph.Initializer[0].ExternalData.Add(new StringStringEntryProto { Key = key, Value = value });
        File.WriteAllBytes(path, proto.ToByteArray());
        AssertRefused(path, proto.Graph.Initializer[0].Name);
    }

    private static void AssertRefused(string modelPath, string expected)
    {
        var graph = OnnxGraph.Load(modelPath);
        var e = Assert.Throws<ScalpelException>(() => graph.Constant(graph.Model.Proto.Graph.Initializer[0].Name));
        Assert.Contains(expected, e.Message);
        Assert.Contains(modelPath, e.Message);
    }

    [Fact]
    public void Float16AndFloat64InitializersAreConverted()
    {
        var model = OnnxModel.Load(Mlp);
        var half = new TensorProto { Name = "h", DataType = (int)TensorProto.Types.DataType.Float16, Dims = { 3 } };
        half.Int32Data.AddRange(new[] { 1.5f, -2f, 0.25f }.Select(v => (int)BitConverter.HalfToUInt16Bits((Half)v)));
        var dbl = new TensorProto { Name = "d", DataType = (int)TensorProto.Types.DataType.Double, Dims = { 2 }, DoubleData = { 0.1, -3 } };
        Assert.Equal([1.5f, -2f, 0.25f], TensorReader.ReadFloat(half, model).Data);
        Assert.Equal([0.1f, -3f], TensorReader.ReadFloat(dbl, model).Data);
        var ints = new TensorProto { Name = "i", DataType = (int)TensorProto.Types.DataType.Int8, Dims = { 1 } };
        var e = Assert.Throws<UnsupportedModelException>(() => TensorReader.ReadFloat(ints, model));
        Assert.Contains("'i'", e.Message);
    }

    /// <summary>Copies the MLP with its first initializer moved to an external file (recorded as <paramref name="location"/>).</summary>
    private static string WithExternalWeight(string dir, string file, out float[] expected, string? location = null)
    {
        var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Mlp));
        var init = proto.Graph.Initializer[0];
        expected = TensorReader.ReadFloat(init, OnnxModel.Load(Mlp)).Data;
        Directory.CreateDirectory(Path.Combine(dir, Path.GetDirectoryName(file)!));
        File.WriteAllBytes(Path.Combine(dir, file), init.RawData.ToByteArray());
        File.WriteAllBytes(Path.Combine(Path.GetDirectoryName(dir)!, "outside.bin"), init.RawData.ToByteArray());
        init.RawData = ByteString.Empty;
        init.DataLocation = TensorProto.Types.DataLocation.External;
        init.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location ?? file });
        var path = Path.Combine(dir, "model.onnx");
        File.WriteAllBytes(path, proto.ToByteArray());
        return path;
    }

    private static byte[] UnknownField(int number, byte[] payload)
    {
        var stream = new MemoryStream();
        var output = new CodedOutputStream(stream);
        output.WriteTag(number, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(ByteString.CopyFrom(payload));
        output.Flush();
        return stream.ToArray();
    }

    private static bool Contains(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;
}
