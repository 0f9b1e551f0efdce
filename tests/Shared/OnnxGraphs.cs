using Scalpel.Onnx.Proto;

namespace Scalpel.Tests;

/// <summary>Pieces of small ONNX graphs built in memory by the tests (opset 13, float tensors, a symbolic batch N).</summary>
public static class OnnxGraphs
{
    public static ModelProto Model(GraphProto graph) =>
        new() { IrVersion = 8, OpsetImport = { new OperatorSetIdProto { Version = 13 } }, Graph = graph };

    /// <summary>A float tensor [N, ...shape] with a symbolic batch N.</summary>
    public static ValueInfoProto BatchOf(string name, params int[] shape)
    {
        var dims = new TensorShapeProto { Dim = { new TensorShapeProto.Types.Dimension { DimParam = "N" } } };
        dims.Dim.AddRange(shape.Select(d => new TensorShapeProto.Types.Dimension { DimValue = d }));
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = dims } } };
    }

    public static TensorProto Floats(string name, IEnumerable<float> values, params long[] dims)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        t.Dims.AddRange(dims);
        t.FloatData.AddRange(values);
        return t;
    }

    /// <summary>A 1-D int64 tensor (shapes, axes, pads), or one of the given dims.</summary>
    public static TensorProto Longs(string name, long[] values, params long[] dims)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        t.Dims.AddRange(dims.Length == 0 ? [values.Length] : dims);
        t.Int64Data.AddRange(values);
        return t;
    }

    /// <summary>An int64 scalar (a Gather index, a Range bound).</summary>
    public static TensorProto LongScalar(string name, long value) =>
        new() { Name = name, DataType = (int)TensorProto.Types.DataType.Int64, Int64Data = { value } };

    /// <summary>A node named node_OUTPUT with one output.</summary>
    public static NodeProto Node(string op, string[] inputs, string output, params AttributeProto[] attributes)
    {
        var n = new NodeProto { OpType = op, Name = "node_" + output, Output = { output } };
        n.Input.AddRange(inputs);
        n.Attribute.AddRange(attributes);
        return n;
    }

    /// <summary>
    /// The batch size of <paramref name="tensor"/> as a 1-element int64 tensor, as PyTorch's exporter computes it:
    /// Shape, Gather of the scalar index "zero", Unsqueeze with axes "axes0" (both initializers the caller adds).
    /// </summary>
    public static NodeProto[] BatchSize(string tensor, string output) =>
    [
        Node("Shape", [tensor], output + "_shape"),
        Node("Gather", [output + "_shape", "zero"], output + "_n", Int("axis", 0)),
        Node("Unsqueeze", [output + "_n", "axes0"], output),
    ];

    public static AttributeProto Int(string name, long value) => new() { Name = name, I = value, Type = AttributeProto.Types.AttributeType.Int };

    public static AttributeProto Float(string name, float value) => new() { Name = name, F = value, Type = AttributeProto.Types.AttributeType.Float };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }
}
