using Google.Protobuf;
using Scalpel.Onnx.Proto;

namespace Scalpel.Onnx;

/// <summary>An ONNX model as loaded from disk: the protobuf message plus where it came from (for external data).</summary>
public sealed class OnnxModel
{
    /// <summary>Nested messages deeper than this are refused (hostile files).</summary>
    private const int RecursionLimit = 64;

    public ModelProto Proto { get; }

    /// <summary>The folder that external data paths are resolved in; null for a model read from a stream without one.</summary>
    public string? BaseDirectory { get; }

    /// <summary>The file name (or a description) used in error messages.</summary>
    public string Source { get; }

    public OnnxModel(ModelProto proto, string? baseDirectory, string source)
    {
        Proto = proto;
        BaseDirectory = baseDirectory;
        Source = source;
    }

    public static OnnxModel Load(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
            throw new ScalpelException(ErrorCode.ModelNotFound, $"{path}: model file not found.");
        using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return Load(stream, Path.GetDirectoryName(full), path);
    }

    public static OnnxModel Load(Stream stream, string? baseDirectory = null, string source = "<stream>")
    {
        ModelProto proto;
        try
        {
            using var input = CodedInputStream.CreateWithLimits(stream, int.MaxValue, RecursionLimit);
            proto = ModelProto.Parser.WithDiscardUnknownFields(false).ParseFrom(input);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new ScalpelException($"{source}: not a valid ONNX model ({e.Message})", e);
        }
        Validate(proto, source);
        return new OnnxModel(proto, baseDirectory, source);
    }

    private static void Validate(ModelProto proto, string source)
    {
        if (proto.IrVersion <= 0 || proto.Graph is null)
            throw new ScalpelException($"{source}: not a valid ONNX model (no IR version or no graph).");
        if (proto.Graph.Output.Count == 0)
            throw new ScalpelException($"{source}: the graph has no outputs.");
    }

    /// <summary>The opset version of the default (ai.onnx) domain.</summary>
    public long Opset =>
        Proto.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => o.Version).DefaultIfEmpty(1).Max();

    /// <summary>Writes the model atomically: a temporary file beside the target, then a rename.</summary>
    public void Save(string path)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = full + ".tmp-" + Environment.ProcessId;
        try
        {
            using (var stream = File.Create(temp))
                Save(stream);
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    public void Save(Stream stream) => Proto.WriteTo(stream);
}
