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

    /// <summary>Opsets of the default domain that Scalpel.Build reads (the operator semantics it implements).</summary>
    public const int MinOpset = 7, MaxOpset = 21;

    /// <summary>Default limit on the bytes all of a model's tensors may declare (raise it with --max-model-bytes).</summary>
    public const long DefaultMaxTensorBytes = 1L << 30;

    public static OnnxModel Load(string path, long maxTensorBytes = DefaultMaxTensorBytes)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
            throw new ScalpelException(ErrorCode.ModelNotFound, $"{path}: model file not found.");
        SafeFile.RequireRegular(full, ErrorCode.InvalidModel, path);
        using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return Load(stream, Path.GetDirectoryName(full), path, maxTensorBytes);
    }

    public static OnnxModel Load(Stream stream, string? baseDirectory = null, string source = "<stream>", long maxTensorBytes = DefaultMaxTensorBytes)
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
        Validate(proto, source, maxTensorBytes);
        return new OnnxModel(proto, baseDirectory, source);
    }

    private static void Validate(ModelProto proto, string source, long maxTensorBytes)
    {
        if (proto.IrVersion <= 0 || proto.Graph is null)
            throw new ScalpelException($"{source}: not a valid ONNX model (no IR version or no graph).");
        if (proto.Graph.Output.Count == 0)
            throw new ScalpelException($"{source}: the graph has no outputs.");
        var opsets = proto.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => o.Version).ToList();
        if (opsets.Count == 0)
            throw new UnsupportedModelException($"{source}: the model imports no opset of the default ONNX domain; re-export it with an opset from {MinOpset} to {MaxOpset}.");
        if (opsets.Max() is < MinOpset or > MaxOpset)
            throw new UnsupportedModelException($"{source}: the model uses opset {opsets.Max()}; Scalpel.Build supports opsets {MinOpset} to {MaxOpset}. Re-export it (or convert it with onnx.version_converter).");
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var init in proto.Graph.Initializer)
            if (!names.Add(init.Name))
                throw new ScalpelException($"{source}: two initializers are named '{init.Name}'; tensor names must be unique.");
        // Checked before any tensor is decoded: external data can make a tiny file declare gigabytes.
        long total = 0;
        var tensors = proto.Graph.Initializer.Concat(proto.Graph.Node.Where(n => n.OpType == "Constant")
            .SelectMany(n => n.Attribute).Where(a => a.T is not null).Select(a => a.T));
        foreach (var t in tensors)
        {
            total = Math.Min(long.MaxValue / 2, total + TensorReader.DeclaredBytes(t));
            if (total > maxTensorBytes)
                throw new ScalpelException(
                    $"{source}: the model's tensors declare more than {maxTensorBytes:N0} bytes (at '{t.Name}'); if the model really is that large, raise the limit with --max-model-bytes.");
        }
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
