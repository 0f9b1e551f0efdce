using System.Text;
using Scalpel.Onnx.Proto;

namespace Scalpel.Onnx;

/// <summary>One ONNX node with typed attribute access.</summary>
public sealed class Node
{
    public NodeProto Proto { get; }
    public int Index { get; }
    public string Name { get; }
    public string OpType => Proto.OpType;
    public IReadOnlyList<string> Inputs => Proto.Input;
    public IReadOnlyList<string> Outputs => Proto.Output;

    public Node(NodeProto proto, int index)
    {
        Proto = proto;
        Index = index;
        Name = string.IsNullOrEmpty(proto.Name) ? $"{proto.OpType}_{index}" : proto.Name;
    }

    /// <summary>Input i, or null when it is absent (missing or the empty name).</summary>
    public string? Input(int i) => i < Proto.Input.Count && Proto.Input[i].Length > 0 ? Proto.Input[i] : null;

    public AttributeProto? Attribute(string name) => Proto.Attribute.FirstOrDefault(a => a.Name == name);
    public bool Has(string name) => Attribute(name) is not null;
    public long Int(string name, long fallback) => Typed(name, AttributeProto.Types.AttributeType.Int)?.I ?? fallback;
    public float Float(string name, float fallback) => Typed(name, AttributeProto.Types.AttributeType.Float) is { } a ? a.F : fallback;
    public long[]? Ints(string name) => Typed(name, AttributeProto.Types.AttributeType.Ints)?.Ints.ToArray();
    public string? String(string name) => Typed(name, AttributeProto.Types.AttributeType.String) is { } a ? a.S.ToStringUtf8() : null;

    /// <summary>
    /// The attribute, refused when it declares another type than ONNX defines for it (a group written as a list
    /// would otherwise read as 0, where ONNX Runtime refuses the model). An undeclared type is taken as it is read.
    /// </summary>
    private AttributeProto? Typed(string name, AttributeProto.Types.AttributeType type)
    {
        var a = Attribute(name);
        if (a is not null && a.Type != type && a.Type != AttributeProto.Types.AttributeType.Undefined)
            throw new ArgumentException($"attribute '{name}' is declared {a.Type}, where ONNX defines {type}");
        return a;
    }

    public override string ToString() => $"node '{Name}' ({OpType})";
}

/// <summary>
/// The graph view of a model: nodes in topological order, its runtime inputs and outputs, and its
/// constants (initializers and Constant nodes), decoded on demand.
/// </summary>
public sealed class OnnxGraph
{
    private readonly Dictionary<string, TensorProto> _constants = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tensor> _decoded = new(StringComparer.Ordinal);

    public OnnxModel Model { get; }
    public long Opset { get; }
    public IReadOnlyList<Node> Nodes { get; }
    public IReadOnlyList<ValueInfoProto> Inputs { get; }
    public IReadOnlyList<ValueInfoProto> Outputs { get; }
    public string Source => Model.Source;

    public OnnxGraph(OnnxModel model)
    {
        Model = model;
        Opset = model.Opset;
        var graph = model.Proto.Graph;
        foreach (var init in graph.Initializer)
            _constants[init.Name] = init;
        var nodes = new List<Node>();
        for (int i = 0; i < graph.Node.Count; i++)
        {
            var node = new Node(graph.Node[i], i);
            if (node.OpType == "Constant" && node.Proto.Domain is "" or "ai.onnx")
            {
                if (node.Outputs.Count != 1 || node.Outputs[0].Length == 0)
                    throw new ScalpelException($"{Source}: {node} has {node.Outputs.Count} outputs; a Constant has exactly one, named.");
                if (!_constants.TryAdd(node.Outputs[0], ConstantValue(node)))
                    throw new ScalpelException($"{Source}: {node} outputs '{node.Outputs[0]}', which is already an initializer or another constant.");
            }
            else
                nodes.Add(node);
        }
        Inputs = graph.Input.Where(i => !_constants.ContainsKey(i.Name)).ToList();
        Outputs = graph.Output.ToList();
        Nodes = TopologicalOrder(nodes);
    }

    public static OnnxGraph Load(string path) => new(OnnxModel.Load(path));

    public bool IsConstant(string name) => _constants.ContainsKey(name);

    public TensorProto ConstantProto(string name) => _constants[name];

    public Tensor Constant(string name)
    {
        if (!_decoded.TryGetValue(name, out var tensor))
            _decoded[name] = tensor = TensorReader.ReadFloat(_constants[name], Model);
        return tensor;
    }

    public long[] IntConstant(string name) => TensorReader.ReadInt64(_constants[name], Model);

    /// <summary>Declared dims of a graph input; -1 where a dimension is symbolic or unknown.</summary>
    public int[] DeclaredShape(ValueInfoProto value)
    {
        var tensorType = value.Type?.TensorType
            ?? throw new UnsupportedModelException($"{Source}: graph input '{value.Name}' is not a tensor.");
        if ((TensorProto.Types.DataType)tensorType.ElemType != TensorProto.Types.DataType.Float)
            throw new UnsupportedModelException(
                $"{Source}: graph input '{value.Name}' has element type {(TensorProto.Types.DataType)tensorType.ElemType}; Scalpel.Build supports float32 inputs.");
        if (tensorType.Shape is null)
            throw new UnsupportedModelException($"{Source}: graph input '{value.Name}' has no declared shape.");
        var dims = tensorType.Shape.Dim.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue && d.DimValue > 0
            ? d.DimValue : -1).ToArray();
        if (dims.Aggregate(1.0, (p, d) => p * Math.Max(1, d)) > TensorReader.MaxElements)
            throw new UnsupportedModelException(
                $"{Source}: graph input '{value.Name}' has shape [{string.Join(",", dims)}], more than the {TensorReader.MaxElements} elements Scalpel.Build accepts.");
        return dims.Select(d => (int)d).ToArray();
    }

    private TensorProto ConstantValue(Node node)
    {
        if (node.Proto.Attribute.Count != 1)
            throw new ScalpelException($"{Source}: {node} has {node.Proto.Attribute.Count} attributes; a Constant has exactly one value.");
        var a = node.Proto.Attribute[0];
        var t = new TensorProto { Name = node.Outputs[0] };
        switch (a.Name)
        {
            case "value" when a.T is null: throw new ScalpelException($"{Source}: {node} has an empty value.");
            case "value": t = a.T.Clone(); t.Name = node.Outputs[0]; break;
            case "value_float": t.DataType = (int)TensorProto.Types.DataType.Float; t.FloatData.Add(a.F); break;
            case "value_floats": t.DataType = (int)TensorProto.Types.DataType.Float; t.FloatData.AddRange(a.Floats); t.Dims.Add(a.Floats.Count); break;
            case "value_int": t.DataType = (int)TensorProto.Types.DataType.Int64; t.Int64Data.Add(a.I); break;
            case "value_ints": t.DataType = (int)TensorProto.Types.DataType.Int64; t.Int64Data.AddRange(a.Ints); t.Dims.Add(a.Ints.Count); break;
            default: throw new UnsupportedModelException($"{Source}: {node} uses attribute '{a.Name}', which Scalpel.Build does not support.");
        }
        return t;
    }

    private List<Node> TopologicalOrder(List<Node> nodes)
    {
        var available = new HashSet<string>(_constants.Keys, StringComparer.Ordinal) { "" };
        foreach (var input in Model.Proto.Graph.Input) available.Add(input.Name);
        var producers = new Dictionary<string, Node>(StringComparer.Ordinal);
        foreach (var node in nodes)
            foreach (var output in node.Outputs)
                if (!producers.TryAdd(output, node))
                    throw new ScalpelException($"{Source}: tensor '{output}' is produced by two nodes ({producers[output].Name}, {node.Name}).");

        var ordered = new List<Node>(nodes.Count);
        var state = new Dictionary<Node, int>(); // 1 = visiting, 2 = done
        foreach (var node in nodes) Visit(node);
        return ordered;

        void Visit(Node node)
        {
            // Iterative depth-first search: a hostile graph can be deeper than the call stack.
            var stack = new Stack<(Node Node, int Next)>();
            if (state.ContainsKey(node)) return;
            stack.Push((node, 0));
            state[node] = 1;
            while (stack.Count > 0)
            {
                var (current, next) = stack.Pop();
                if (next < current.Inputs.Count)
                {
                    stack.Push((current, next + 1));
                    var name = current.Inputs[next];
                    if (available.Contains(name)) continue;
                    if (!producers.TryGetValue(name, out var producer))
                        throw new ScalpelException($"{Source}: {current} reads tensor '{name}', which nothing produces.");
                    if (state.TryGetValue(producer, out var s))
                    {
                        if (s == 1) throw new ScalpelException($"{Source}: the graph has a cycle through {producer}.");
                        continue;
                    }
                    state[producer] = 1;
                    stack.Push((producer, 0));
                }
                else
                {
                    state[current] = 2;
                    ordered.Add(current);
                }
            }
        }
    }

    public override string ToString()
    {
        var sb = new StringBuilder();
        foreach (var n in Nodes) sb.AppendLine($"{n.OpType} {n.Name}: {string.Join(",", n.Inputs)} -> {string.Join(",", n.Outputs)}");
        return sb.ToString();
    }
}
