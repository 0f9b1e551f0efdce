using Scalpel.Onnx.Proto;

namespace Scalpel.Onnx;

/// <summary>Small ONNX models built in memory: the single layers the kernel profiler times and the tests check.</summary>
public static class SyntheticModels
{
    /// <summary>One Gemm: y = x W^T + b, with x [N, k] (N symbolic), W [n, k] and b [n].</summary>
    public static OnnxModel SingleGemm(int k, int n, float[] weight, float[] bias, string source = "single Gemm")
    {
        var w = new TensorProto { Name = "W", DataType = (int)TensorProto.Types.DataType.Float, Dims = { n, k } };
        w.FloatData.AddRange(weight);
        var b = new TensorProto { Name = "B", DataType = (int)TensorProto.Types.DataType.Float, Dims = { n } };
        b.FloatData.AddRange(bias);
        var graph = new GraphProto
        {
            Name = "single_gemm",
            Node =
            {
                new NodeProto
                {
                    OpType = "Gemm", Name = "layer", Input = { "x", "W", "B" }, Output = { "y" },
                    Attribute = { new AttributeProto { Name = "transB", I = 1, Type = AttributeProto.Types.AttributeType.Int } },
                },
            },
            Initializer = { w, b },
            Input = { BatchOf("x", k) },
            Output = { BatchOf("y", n) },
        };
        var model = new ModelProto { IrVersion = 8, OpsetImport = { new OperatorSetIdProto { Version = 13 } }, Graph = graph };
        return new OnnxModel(model, null, source);
    }

    /// <summary>A float tensor [N, size] with a symbolic batch N.</summary>
    private static ValueInfoProto BatchOf(string name, int size) => new()
    {
        Name = name,
        Type = new TypeProto
        {
            TensorType = new TypeProto.Types.Tensor
            {
                ElemType = (int)TensorProto.Types.DataType.Float,
                Shape = new TensorShapeProto { Dim = { new TensorShapeProto.Types.Dimension { DimParam = "N" }, new TensorShapeProto.Types.Dimension { DimValue = size } } },
            },
        },
    };
}
