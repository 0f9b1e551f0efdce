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

    public static AttributeProto Int(string name, long value) => new() { Name = name, I = value, Type = AttributeProto.Types.AttributeType.Int };

    public static AttributeProto Float(string name, float value) => new() { Name = name, F = value, Type = AttributeProto.Types.AttributeType.Float };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }
}
