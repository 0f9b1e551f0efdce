using System.Reflection;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

public sealed record EmitOptions(string Namespace, string ClassName, CodeTarget Target, string ModelName)
{
    /// <summary>Conv kernels chosen by timing them on this machine, by layer name; the cost model chooses for the others.</summary>
    public IReadOnlyDictionary<string, MeasuredKernel> MeasuredKernels { get; init; } = new Dictionary<string, MeasuredKernel>();
}

/// <summary>A conv layer's kernel as measured on this machine, and the timings that chose it (for the report).</summary>
public sealed record MeasuredKernel(ConvKernel Kernel, string Why);

/// <summary>The generated source file and the weight blob it loads.</summary>
public sealed record GeneratedModel(string ClassName, string Source, byte[] Weights)
{
    /// <summary>The kernel each Dense and Conv layer runs, and why, in layer order.</summary>
    public IReadOnlyList<KernelChoice> Kernels { get; init; } = [];
}

/// <summary>
/// Emits the generated code (the contract in README.md, "The generated code") for an analysed model: one method per layer,
/// layer sizes as constants, vector code at the target's width.
/// </summary>
public sealed partial class CSharpEmitter
{
    private readonly ModelGraph _model;
    private readonly EmitOptions _options;
    private readonly KernelEmitter _kernels;
    private readonly List<(string Name, Array Data)> _sections = [];
    private readonly List<(string Name, int Size, string Comment)> _buffers = [];
    /// <summary>Layer output buffers, shared over time; capacity in floats.</summary>
    private readonly List<(string Name, int Capacity)> _activations = [];
    private readonly SortedSet<int> _free = [];
    private readonly int[] _scratch = new int[4];
    /// <summary>The last layer that reads each tensor (the model output: never released).</summary>
    private readonly Dictionary<string, int> _lastUse = new(StringComparer.Ordinal);
    /// <summary>Floats per sample of each runtime tensor's storage (input, output, intermediate buffers).</summary>
    private readonly Dictionary<string, int> _sampleSize = new(StringComparer.Ordinal);
    /// <summary>Samples run through the layers together; Dense layers reuse each weight across them.</summary>
    private readonly int _chunk;
    /// <summary>
    /// Layers before this index (the first Dense layer that takes a whole chunk) run one sample at a time in one loop,
    /// with their own outputs sized for one sample; 0 when every layer runs on the chunk. See <see cref="ChunkOf"/>.
    /// </summary>
    private readonly int _split;
    /// <summary>Tensors the layers from <see cref="_split"/> on read (directly or through a reshape): stored for the whole chunk.</summary>
    private readonly HashSet<string> _readAfterSplit = new(StringComparer.Ordinal);
    /// <summary>Activation buffers that now hold a tensor of one sample (before the split).</summary>
    private readonly HashSet<string> _perSample = new(StringComparer.Ordinal);
    private readonly CodeWriter _prefix = new();
    private readonly Dictionary<string, string> _storage = new(StringComparer.Ordinal);
    private readonly CodeWriter _run = new();
    /// <summary>Weight sections of Winograd convs (M, C, kernel size, on tiles or along columns), which the loader transforms.</summary>
    private readonly List<(string Section, int M, int C, int K, bool Tiles)> _winograd = [];
    /// <summary>Sparse layers whose indices the weight loader bounds-checks once.</summary>
    private readonly List<(string Id, SparseMatrix Matrix)> _checks = [];
    private readonly CodeWriter _methods = new();
    private readonly List<KernelChoice> _choices = [];
    /// <summary>The layers folded into a conv before them, each mapped to that conv's index.</summary>
    private readonly Dictionary<Layer, int> _foldedInto = [];

    private CSharpEmitter(ModelGraph model, EmitOptions options)
    {
        _model = model;
        _options = options;
        _kernels = new KernelEmitter(options.Target, options.MeasuredKernels);
        (_chunk, _split) = ChunkOf(model);
        _readAfterSplit.Add(model.OutputName);
        for (int i = model.Layers.Count - 1; i >= 0; i--)
        {
            var layer = model.Layers[i];
            if (i >= _split) _readAfterSplit.UnionWith(layer.Inputs);
            else if (layer is ReshapeLayer && _readAfterSplit.Contains(layer.Output)) _readAfterSplit.Add(layer.Inputs[0]);
        }
    }

    /// <summary>Dense layers that run on a whole chunk of samples at once (each weight loaded once for all of them).</summary>
    private static bool RunsOnChunk(Layer layer) =>
        layer is WeightedLayer { Family: LayerKind.Fc } fc && (fc.Format != WeightFormat.Dense || fc.SparseFits);

    /// <summary>
    /// Samples per chunk, and the split. A chunk's largest tensor must stay near cache size, which leaves a CNN with
    /// large maps one sample per chunk; its fully connected tail would then read every weight once per sample
    /// (AlexNet's and VGG's are 100-400 MB). So the layers before the first chunk-wide Dense layer run sample by
    /// sample inside the chunk (their tensors stay in cache; on the small CNNs this measured 2-4 % faster at batch
    /// 32 than chunks of 8) and the tail runs on chunks as large as its own tensors allow, up to 32.
    /// </summary>
    private static (int Chunk, int Split) ChunkOf(ModelGraph model)
    {
        if (model.BatchMode != BatchMode.PerSample) return (1, 0);
        int Fit(int largest) => Math.Clamp(ChunkFloats / Math.Max(1, largest), 1, ChunkSize);
        int chunk = Fit(model.Layers.Select(l => Shape.Size(l.OutputShape)).Append(model.InputSize).Max());
        int split = model.Layers.TakeWhile(l => !RunsOnChunk(l)).Count();
        if (split == model.Layers.Count) split = -1;
        if (split <= 0) return (chunk, 0);
        // The tail's own outputs and what it reads from before the split (model input sizes included, for safety).
        var tail = model.Layers.Skip(split).ToList();
        int largest = tail.SelectMany(l => l.Inputs.Select(i => model.Shapes.TryGetValue(i, out var s) ? Shape.Size(s) : 0).Append(Shape.Size(l.OutputShape))).Max();
        int tailChunk = Math.Clamp(ChunkFloats / Math.Max(1, largest), 1, TailChunkSize);
        return tailChunk > 1 ? (tailChunk, split) : (chunk, 0);
    }

    /// <summary>Most samples per chunk for per-sample models: enough for the dense layers to reuse each weight load.</summary>
    public const int ChunkSize = 8;

    /// <summary>
    /// Most samples per chunk when the layers before the fully connected tail run one sample at a time: the tail's
    /// weights, often too large for any cache, are then read once per this many samples.
    /// </summary>
    private const int TailChunkSize = 32;

    /// <summary>
    /// Floats a chunk of the largest tensor may take (1 MB): a CNN with large feature maps runs one sample at a
    /// time, as its convolutions gain nothing from chunks, and keeps its buffers in cache.
    /// </summary>
    private const int ChunkFloats = 256 * 1024;

    public static GeneratedModel Emit(ModelGraph model, EmitOptions options)
    {
        CodeText.CheckNames(options.Namespace, options.ClassName);
        try
        {
            return new CSharpEmitter(model, options).Run();
        }
        catch (OverflowException e)
        {
            // Buffer sizes are computed checked: a model whose buffers exceed an int is refused, not emitted.
            throw new UnsupportedModelException($"{model.Source}: a layer's working buffers are too large for generated code ({e.Message}); use a smaller input shape.");
        }
    }

    private string C => _options.ClassName;

    private GeneratedModel Run()
    {
        _storage[_model.InputName] = "input";
        _sampleSize["input"] = _model.InputSize;
        _sampleSize["output"] = _model.OutputSize;
        for (int i = 0; i < _model.Layers.Count; i++)
            foreach (var input in _model.Layers[i].Inputs)
                _lastUse[input] = i;
        _lastUse[_model.OutputName] = int.MaxValue;
        for (int i = 0; i < _model.Layers.Count; i++)
        {
            EmitLayer(i, _model.Layers[i]);
            ReleaseDead(i);
        }
        if (_storage[_model.OutputName] != "output")
            _run.Line($"{Whole(_storage[_model.OutputName])}.CopyTo(output);");
        var source = Assemble();
        var blob = WeightBlob.Write(_sections.Select(s => s.Data).ToList());
        return new GeneratedModel(C, source, blob) { Kernels = _choices };
    }

    private string Section(string name, Array data)
    {
        _sections.Add((name, data));
        return $"_w.{name}";
    }

    private void EmitLayer(int index, Layer layer)
    {
        var id = $"L{index:00}";
        var label = $"{layer.Kind} '{CodeText.Comment(layer.Name)}'";
        var shapes = string.Join(", ", layer.Inputs.Select(i => Shape.Format(_model.Shapes[i], _model.SymbolicBatch))) +
                     " -> " + Shape.Format(layer.OutputShape, _model.SymbolicBatch);
        if (_foldedInto.TryGetValue(layer, out var into))
        {
            RunOf(index).Line($"// {id} {label}: {shapes}: folded into the epilogue of L{into:00}");
            return;
        }
        if (layer.Accept(new LayerEmitter(this, index, id, $"{label} {shapes}")) is not { } call)
        {
            RunOf(index).Line($"// {id} {label}: {shapes}: no work, same data with a new shape");
            return;
        }
        _methods.Line("#endregion");
        var run = RunOf(index);
        run.Line($"// {id} {label}: {shapes}");
        string line = $"{call.Method}({string.Join(", ", call.Args.Select(a => !_sampleSize.ContainsKey(a) ? a : call.WholeChunk ? Whole(a) : SampleOf(a)))}{(call.WholeChunk ? ", count" : "")});";
        run.Line(call.WholeChunk || index < _split ? line : $"for (int s = 0; s < count; s++) {line}");
    }

    /// <summary>Where layer <paramref name="index"/>'s statements go: the per-sample loop before the split, else the chunk's body.</summary>
    private CodeWriter RunOf(int index) => index < _split ? _prefix : _run;

    /// <summary>The weight sections of a sparse layer (values, indices, row starts, dense tail, bias), bounds-checked at load.</summary>
    private SparseMatrix SparseSections(string id, DenseLayer d, List<string> args)
    {
        var sparse = SparseMatrix.For(d.Format, d.Weight, d.N, d.K, d.GroupWidth);
        args.Add(Section($"{id}_Values", sparse.Values));
        args.Add(Section($"{id}_Columns", Narrow(sparse.Columns, sparse.IndexBytes)));
        args.Add(Section($"{id}_RowStarts", Narrow(sparse.RowStarts, sparse.RowStartBytes)));
        if (sparse.TailWidth > 0) args.Add(Section($"{id}_Tail", sparse.Tail));
        // Along outputs the bias is padded to whole blocks, so the kernel loads it as vectors.
        if (d.Bias is not null) args.Add(Section($"{id}_Bias", sparse.AlongOutputs ? [.. d.Bias, .. new float[sparse.PointerRows * sparse.GroupWidth - d.N]] : d.Bias));
        _checks.Add((id, sparse));
        return sparse;
    }

    /// <summary>Indices in the smallest integer type that holds them.</summary>
    private static Array Narrow(int[] values, int bytes) => bytes switch
    {
        1 => values.Select(v => (byte)v).ToArray(),
        2 => values.Select(v => (ushort)v).ToArray(),
        _ => values,
    };

    /// <summary>The version of Scalpel.Build that wrote the code, without source-control metadata (same tool, same text).</summary>
    private static readonly string GeneratorVersion =
        (typeof(CSharpEmitter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0").Split('+')[0];

    private IEnumerable<string> SampleShape(int[] shape) =>
        shape.Select((d, i) => I(i == 0 && _model.SymbolicBatch ? 1 : d));

    private string Assemble()
    {
        var w = new CodeWriter();
        var target = _options.Target;
        w.Line("// <auto-generated>");
        w.Line($"// Generated by Scalpel.Build from {CodeText.Comment(_options.ModelName)} for target {CodeText.Comment(target.Name)} (Vector{target.SimdBits}{(target.Fma ? ", FMA" : "")}).");
        w.Line("// Do not edit: changes are lost when the model is rebuilt.");
        w.Line("// </auto-generated>");
        w.Line("#nullable enable");
        w.Line("#pragma warning disable CS1591, IDE0005, IDE0059");
        // Type names are written global::-qualified (the namespace is the user's); these bring the extension methods in.
        w.Line("using System;");
        w.Line("using System.Runtime.Intrinsics;");
        w.Line();
        w.Line($"namespace {_options.Namespace};");
        w.Line();
        w.Line("/// <summary>");
        w.Line($"/// Inference for {CodeText.Comment(_options.ModelName)}: input {Shape.Format(_model.InputShape, _model.SymbolicBatch)}, output {Shape.Format(_model.OutputShape, _model.SymbolicBatch)}.");
        w.Line("/// An instance owns its activation and scratch buffers, so it runs one call at a time: use one instance per");
        w.Line("/// thread. Instances share their weights (read-only), so extra instances cost only their buffers.");
        w.Line("/// </summary>");
        w.Line($"[GeneratedCode(\"Scalpel.Build\", \"{GeneratorVersion}\")]");
        w.Open($"public sealed partial class {C}");
        w.Line("/// <summary>Floats per sample in the input.</summary>");
        w.Line($"public const int InputSize = {I(_model.InputSize)};");
        w.Line("/// <summary>Floats per sample in the output.</summary>");
        w.Line($"public const int OutputSize = {I(_model.OutputSize)};");
        w.Line($"/// <summary>The input's shape{(_model.SymbolicBatch ? " for one sample (dimension 0 is the batch)" : "")}: <see cref=\"InputSize\"/> floats, row-major.</summary>");
        w.Line($"public static ReadOnlySpan<int> InputShape => [{string.Join(", ", SampleShape(_model.InputShape))}];");
        w.Line($"/// <summary>The output's shape{(_model.SymbolicBatch ? " for one sample" : "")}: <see cref=\"OutputSize\"/> floats, row-major.</summary>");
        w.Line($"public static ReadOnlySpan<int> OutputShape => [{string.Join(", ", SampleShape(_model.OutputShape))}];");
        w.Line("/// <summary>The manifest resource name the parameterless constructor loads the weights from.</summary>");
        w.Line($"public const string WeightsResourceName = \"{_options.Namespace}.{C}.bin\";");
        w.Line();
        w.Line("private static Weights? s_embedded;");
        w.Line("private readonly Weights _w;");
        foreach (var (name, capacity) in _activations)
            w.Line($"private readonly float[] {name} = new float[{I(capacity)}]; // layer outputs that are never alive together{(_split > 0 ? $", one sample before L{_split:00}, {_chunk} from it on" : _chunk > 1 ? $", {_chunk} samples" : "")}");
        foreach (var (name, size, comment) in _buffers)
            w.Line($"private readonly float[] {name} = new float[{I(size)}]; // {comment}");
        for (int slot = 0; slot < _scratch.Length; slot++)
            if (_scratch[slot] > 0) w.Line($"private readonly float[] _scratch{slot} = new float[{I(_scratch[slot])}]; // kernel scratch, overwritten whole by each layer that uses it");
        w.Line();
        w.Line("/// <summary>Uses the weights embedded in this assembly (loaded once, then shared).</summary>");
        w.Line($"public {C}() : this(Embedded()) {{ }}");
        w.Line();
        w.Line("/// <summary>Loads the weights from a stream holding a Scalpel weight file.</summary>");
        w.Line($"public {C}(Stream weights) : this(Weights.Load(weights)) {{ }}");
        w.Line();
        w.Line($"private {C}(Weights weights) => _w = weights;");
        w.Line();
        w.Line("/// <summary>Runs one sample.</summary>");
        w.Line("public void Run(ReadOnlySpan<float> input, Span<float> output) => Run(input, output, 1);");
        w.Line();
        w.Line("/// <summary>Runs <paramref name=\"batchSize\"/> samples stored one after another.</summary>");
        w.Open("public void Run(ReadOnlySpan<float> input, Span<float> output, int batchSize)");
        w.Line("if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, \"batchSize must be at least 1.\");");
        w.Line("if (input.Length != (long)batchSize * InputSize)");
        w.Line($"    throw new ArgumentException($\"{C}.Run: input holds {{input.Length}} floats; {{batchSize}} sample(s) need {{(long)batchSize * InputSize}} ({{InputSize}} each).\", nameof(input));");
        w.Line("if (output.Length != (long)batchSize * OutputSize)");
        w.Line($"    throw new ArgumentException($\"{C}.Run: output holds {{output.Length}} floats; {{batchSize}} sample(s) need {{(long)batchSize * OutputSize}} ({{OutputSize}} each).\", nameof(output));");
        w.Open($"for (int first = 0; first < batchSize; first += {_chunk})");
        w.Line($"int count = Math.Min({_chunk}, batchSize - first);");
        w.Line("RunChunk(input.Slice(first * InputSize, count * InputSize), output.Slice(first * OutputSize, count * OutputSize), count);");
        w.Close();
        w.Close();
        w.Line();
        w.Line($"/// <summary>Runs 1 to {_chunk} samples through every layer.</summary>");
        w.Open("private void RunChunk(ReadOnlySpan<float> input, Span<float> output, int count)");
        if (_split > 0)
        {
            w.Open($"for (int s = 0; s < count; s++) // layers L00-L{_split - 1:00} one sample at a time: their tensors stay in cache");
            foreach (var line in _prefix.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries)) w.Line(line);
            w.Close();
        }
        foreach (var line in _run.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries)) w.Line(line);
        w.Close();
        foreach (var line in _methods.ToString().TrimEnd('\n').Split('\n')) w.Line(line);
        _kernels.Functions(w);
        w.Line();
        EmitEmbedded(w);
        w.Line();
        EmitWeights(w);
        w.Close();
        return GlobalNames.Qualify(w.ToString());
    }

    private void EmitEmbedded(CodeWriter w)
    {
        w.Open("private static Weights Embedded()");
        w.Line("var weights = Volatile.Read(ref s_embedded);");
        w.Line("if (weights is not null) return weights;");
        w.Line($"using (var stream = typeof({C}).Assembly.GetManifestResourceStream(WeightsResourceName)");
        w.Line($"    ?? throw new InvalidOperationException($\"{C}: embedded weights '{{WeightsResourceName}}' not found. Embed {C}.bin with LogicalName=\\\"{{WeightsResourceName}}\\\" (the Scalpel.Build package does this) or use new {C}(Stream).\"))");
        w.Line("    weights = Weights.Load(stream);");
        w.Line("return Interlocked.CompareExchange(ref s_embedded, weights, null) ?? weights;");
        w.Close();
    }

    private void EmitWeights(CodeWriter w)
    {
        w.Open("private sealed class Weights");
        w.Line($"private static readonly int[] SectionLengths = [{string.Join(", ", _sections.Select(s => I(s.Data.Length)))}];");
        w.Line($"private static readonly int[] SectionTypes = [{string.Join(", ", _sections.Select(s => I((int)WeightBlob.TypeOf(s.Data))))}];");
        foreach (var (name, data) in _sections)
            w.Line($"public readonly {WeightBlob.CSharpName(WeightBlob.TypeOf(data))}[] {name};");
        w.Line();
        w.Open("private Weights(Array[] s)");
        for (int i = 0; i < _sections.Count; i++)
        {
            string read = $"({WeightBlob.CSharpName(WeightBlob.TypeOf(_sections[i].Data))}[])s[{i}]";
            w.Line(_winograd.FirstOrDefault(x => x.Section == _sections[i].Name) is ({ } _, var m, var c, var k, var tiles)
                ? tiles ? $"{_sections[i].Name} = {KernelEmitter.WinogradTilesLoaderName(k)}({read}, {I(m)}, {I(c)}, {I(_options.Target.Lanes)});"
                    : $"{_sections[i].Name} = {KernelEmitter.WinogradLoaderName(k)}({read}, {I(m)}, {I(c)});"
                : $"{_sections[i].Name} = {read};");
        }
        foreach (var (id, m) in _checks)
            w.Line($"CheckSparse(\"{id}\", {id}_Columns, {id}_RowStarts, {I(m.PointerRows)}, {I(m.Entries)}, {I(m.MaxColumn)});");
        w.Close();
        foreach (var k in _winograd.Where(x => !x.Tiles).Select(x => x.K).Distinct().Order()) KernelEmitter.WinogradLoader(w, k);
        foreach (var k in _winograd.Where(x => x.Tiles).Select(x => x.K).Distinct().Order()) KernelEmitter.WinogradTilesLoader(w, k);
        if (_checks.Count > 0)
        {
            w.Line();
            w.Line("/// <summary>Kernels index inputs by these without bounds checks: check them once, at load.</summary>");
            w.Open("private static void CheckSparse<TC, TR>(string layer, TC[] columns, TR[] rowStarts, int rows, int entries, int maxColumn) where TC : unmanaged, System.Numerics.IBinaryInteger<TC> where TR : unmanaged, System.Numerics.IBinaryInteger<TR>");
            w.Line("if (columns.Length != entries || rowStarts.Length != rows + 1 || int.CreateTruncating(rowStarts[0]) != 0 || int.CreateTruncating(rowStarts[rows]) != entries)");
            w.Line($"    throw new InvalidDataException($\"{C} weights: sparse layer {{layer}} has an inconsistent structure.\");");
            w.Line("for (int r = 0; r < rows; r++) if (rowStarts[r] > rowStarts[r + 1]) throw new InvalidDataException($\"" + C + " weights: sparse layer {layer} has decreasing row starts.\");");
            w.Line("foreach (var c in columns) if (int.CreateTruncating(c) > maxColumn) throw new InvalidDataException($\"" + C + " weights: sparse layer {layer} indexes column {c}, past {maxColumn}.\");");
            w.Close();
        }
        w.Line();
        w.Open("public static Weights Load(Stream stream)");
        w.Line("ArgumentNullException.ThrowIfNull(stream);");
        w.Line("byte[] blob;");
        w.Line("using (var copy = new MemoryStream()) { stream.CopyTo(copy); blob = copy.ToArray(); }");
        w.Line("ReadOnlySpan<byte> span = blob;");
        w.Line($"const string Who = \"{C} weights\";");
        w.Line($"if (span.Length < {WeightBlob.FixedHeaderSize} || !span[..8].SequenceEqual(\"SCALPELW\"u8))");
        w.Line("    throw new InvalidDataException($\"{Who}: not a Scalpel weight file.\");");
        w.Line("int version = BinaryPrimitives.ReadInt32LittleEndian(span[8..]);");
        w.Line($"if (version != {WeightBlob.Version}) throw new InvalidDataException($\"{{Who}}: format version {{version}}; this code reads version {WeightBlob.Version}.\");");
        w.Line("int count = BinaryPrimitives.ReadInt32LittleEndian(span[12..]);");
        w.Line("if (count != SectionLengths.Length)");
        w.Line("    throw new InvalidDataException($\"{Who}: {count} sections where this model has {SectionLengths.Length}; the file belongs to another model.\");");
        w.Line("long payload = BinaryPrimitives.ReadInt64LittleEndian(span[16..]);");
        w.Line("long header = span.Length - payload;");
        w.Line($"if (payload < 0 || header < {WeightBlob.FixedHeaderSize} + {WeightBlob.EntrySize}L * count) throw new InvalidDataException($\"{{Who}}: truncated file.\");");
        w.Line("Span<byte> hash = stackalloc byte[32];");
        w.Line("SHA256.HashData(span[(int)header..], hash);");
        w.Line("if (!hash.SequenceEqual(span.Slice(24, 32))) throw new InvalidDataException($\"{Who}: checksum mismatch; the file is corrupt or truncated.\");");
        w.Line("var sections = new Array[count];");
        w.Open("for (int i = 0; i < count; i++)");
        w.Line($"var entry = span[({WeightBlob.FixedHeaderSize} + {WeightBlob.EntrySize} * i)..];");
        w.Line("long offset = BinaryPrimitives.ReadInt64LittleEndian(entry);");
        w.Line("long length = BinaryPrimitives.ReadInt64LittleEndian(entry[8..]);");
        w.Line("int type = BinaryPrimitives.ReadInt32LittleEndian(entry[16..]);");
        w.Line("int size = type switch { 2 => 1, 3 => 2, _ => 4 };");
        w.Line("if (length != SectionLengths[i] || type != SectionTypes[i] || offset < header || offset + size * length > span.Length)");
        w.Line("    throw new InvalidDataException($\"{Who}: section {i} holds {length} values of type {type} where this model needs {SectionLengths[i]} of type {SectionTypes[i]}; the file belongs to another model.\");");
        w.Line("var bytes = span.Slice((int)offset, (int)(size * length));");
        w.Open("sections[i] = type switch");
        w.Line("1 => Read<float>(bytes, BinaryPrimitives.ReadSingleLittleEndian),");
        w.Line("2 => bytes.ToArray(),");
        w.Line("3 => Read<ushort>(bytes, BinaryPrimitives.ReadUInt16LittleEndian),");
        w.Line("_ => Read<int>(bytes, BinaryPrimitives.ReadInt32LittleEndian),");
        w.Close(";");
        w.Close();
        w.Line("return new Weights(sections);");
        w.Close();
        w.Line();
        w.Line("private delegate T Reader<T>(ReadOnlySpan<byte> bytes);");
        w.Line();
        w.Open("private static T[] Read<T>(ReadOnlySpan<byte> bytes, Reader<T> read) where T : unmanaged");
        w.Line("var values = new T[bytes.Length / Unsafe.SizeOf<T>()];");
        w.Line("if (BitConverter.IsLittleEndian) bytes.CopyTo(MemoryMarshal.AsBytes(values.AsSpan()));");
        w.Line("else for (int j = 0; j < values.Length; j++) values[j] = read(bytes[(j * Unsafe.SizeOf<T>())..]);");
        w.Line("return values;");
        w.Close();
        w.Close();
    }
}
