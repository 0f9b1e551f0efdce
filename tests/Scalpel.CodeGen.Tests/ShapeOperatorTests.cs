using Google.Protobuf;
using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;
using Xunit;
using static Scalpel.Tests.OnnxGraphs;

namespace Scalpel.Tests;

/// <summary>
/// A small model written as PyTorch's exporter writes a ShuffleNet unit and its neighbours (issue 16): a shape subgraph
/// (Shape, Gather, Unsqueeze, Concat) feeding the Reshape, Transpose, Reshape of a channel shuffle, Split, SiLU,
/// HardSwish, HardSigmoid, a per-channel scale, Pad, Slice, nearest Resize, Pow, Sqrt, Erf, ReduceMean, Gather and Div, compiled and
/// run against ONNX Runtime on a batch of 3.
/// </summary>
public sealed class ShapeOperatorTests
{
    // Two 1x1 convs of 8 and 4 inputs, then element-wise functions and an average of 32 values: the generated sums
    // differ from ONNX Runtime's by a few ulps, and erf is the Abramowitz-Stegun formula (error below 1.5e-7);
    // 1e-5 leaves a margin while a wrong index (a shuffle, slice or resize reading the wrong element) is off by far more.
    private const float Tolerance = 1e-5f;

    private const int Batch = 3;

    [Fact]
    public void ShuffleUnitMatchesOnnxRuntime()
    {
        var model = ShuffleUnit();
        var graph = GraphAnalyzer.Analyze(model);
        // The shape subgraph folds away: no layer comes from Shape, Gather on constants, Unsqueeze or Concat of shapes.
        Assert.DoesNotContain(graph.Layers, l => l.Node.OpType is "Shape" or "Unsqueeze" or "Cast" or "ConstantOfShape");
        Assert.Equal(["Conv", "Split", "Split", "Conv", "Silu", "HardSwish", "Concat", "Reshape", "Transpose", "Reshape", "Pad",
            "Slice", "HardSigmoid", "GlobalAveragePool", "Mul", "Sub", "Resize", "Add", "Pow", "Sqrt", "Erf", "GlobalAveragePool", "Gather", "Div"], graph.Layers.Select(l => l.Kind));
        Assert.Equal([1, 8, 4, 3], graph.Shapes["sliced"]);
        Assert.Equal([1, 8, 8, 4], graph.Shapes["resized"]);
        Assert.Equal([1, 8], graph.Shapes["pooled"]);

        var sources = MatchesOnnxRuntime(model, graph, 8 * 6 * 6, "Shuffle");
        // The per-channel scale runs on vectors, not the general broadcast.
        Assert.All(sources, source => Assert.Contains("float s = scalars[o];", source));
    }

    [Fact]
    public void LinearResizeMatchesOnnxRuntime()
    {
        // Bilinear up by 2 along H and down by 0.6 along W (half_pixel), then linear along W only, by 2 (align_corners).
        var graph = new GraphProto { Name = "linear", Input = { BatchOf("x", 2, 3, 5) }, Output = { BatchOf("y", 2, 6, 6) } };
        graph.Initializer.Add(Floats("scales", [1f, 1f, 2f, 0.6f], 4));
        graph.Initializer.Add(Floats("widen", [1f, 1f, 1f, 2f], 4));
        AttributeProto Text(string name, string value) => new() { Name = name, S = ByteString.CopyFromUtf8(value), Type = AttributeProto.Types.AttributeType.String };
        graph.Node.Add(Node("Resize", ["x", "", "scales"], "up", Text("mode", "linear")));
        graph.Node.Add(Node("Resize", ["up", "", "widen"], "y", Text("mode", "linear"), Text("coordinate_transformation_mode", "align_corners")));
        var model = new OnnxModel(OnnxGraphs.Model(graph), null, "linear test");
        var analyzed = GraphAnalyzer.Analyze(model);
        Assert.Equal([1, 2, 6, 3], analyzed.Shapes["up"]);
        MatchesOnnxRuntime(model, analyzed, 2 * 3 * 5, "Linear");
    }

    /// <summary>Runs the model in ONNX Runtime and its generated code for two targets on a batch of 3; returns the sources.</summary>
    private static List<string> MatchesOnnxRuntime(OnnxModel model, ModelGraph graph, int sampleSize, string name)
    {
        var rng = new Random(16);
        var input = Enumerable.Range(0, Batch * sampleSize).Select(_ => 2 * rng.NextSingle() - 1).ToArray();
        var path = Path.Combine(Path.GetTempPath(), $"scalpel-{name}-{Guid.NewGuid():N}.onnx");
        var sources = new List<string>();
        try
        {
            model.Save(path);
            using var ort = new OrtReference(path);
            var expected = ort.Run(input, Batch);
            foreach (var target in new[] { "x64-avx2", "x64-sse" })
            {
                var ns = name + "_" + target.Replace('-', '_');
                var code = CSharpEmitter.Emit(graph, new EmitOptions(ns, "M", CodeTarget.Resolve(target), name));
                sources.Add(code.Source);
                var run = GeneratedAssembly.CompileOne(code, ns);
                var actual = new float[expected.Length];
                run(input, actual, Batch);
                Assert.Equal(Batch * graph.OutputSize, actual.Length);
                for (int i = 0; i < expected.Length; i++)
                    Assert.True(Math.Abs(actual[i] - expected[i]) <= Tolerance * (1 + Math.Abs(expected[i])), $"{target}: element {i} is {actual[i]}, ONNX Runtime {expected[i]}");
            }
        }
        finally
        {
            File.Delete(path);
        }
        return sources;
    }

    private static OnnxModel ShuffleUnit()
    {
        var rng = new Random(7);
        float[] Weights(int n) => Enumerable.Range(0, n).Select(_ => rng.NextSingle() - 0.5f).ToArray();
        var graph = new GraphProto { Name = "shuffle", Input = { BatchOf("x", 8, 6, 6) }, Output = { BatchOf("y", 3) } };
        graph.Initializer.Add(Floats("w1", Weights(64), 8, 8, 1, 1));
        graph.Initializer.Add(Floats("w2", Weights(16), 4, 4, 1, 1));
        graph.Initializer.Add(Longs("split", [4, 4]));
        graph.Initializer.Add(Longs("axes0", [0]));
        graph.Initializer.Add(LongScalar("zero", 0));
        graph.Initializer.Add(Longs("groups", [2, 4, 6, 6]));
        graph.Initializer.Add(Longs("rest", [-1, 6, 6]));
        graph.Initializer.Add(Longs("pads", [0, 0, 1, 2, 0, 0, 1, 0]));
        graph.Initializer.Add(Floats("padValue", [0.25f]));
        graph.Initializer.Add(Longs("starts", [1, -1]));
        graph.Initializer.Add(Longs("ends", [long.MaxValue, 0]));
        graph.Initializer.Add(Longs("sliceAxes", [2, 3]));
        graph.Initializer.Add(Longs("steps", [2, -3]));
        graph.Initializer.Add(Floats("scales", [1f, 1f, 2f, 1.5f], 4));
        graph.Initializer.Add(Floats("two", [2f]));
        graph.Initializer.Add(Floats("shift", [0.3f]));
        graph.Initializer.Add(Longs("picked", [7, 0, 3]));
        graph.Initializer.Add(Floats("divisor", [0.5f, 2f, -4f], 3));
        graph.Node.Add(Node("Conv", ["x", "w1"], "c1"));
        var split = Node("Split", ["c1", "split"], "a", Int("axis", 1));
        split.Output.Add("b");
        graph.Node.Add(split);
        graph.Node.Add(Node("Conv", ["b", "w2"], "c2"));
        graph.Node.Add(Node("Sigmoid", ["c2"], "sig"));
        graph.Node.Add(Node("Mul", ["c2", "sig"], "silu"));
        graph.Node.Add(Node("HardSwish", ["silu"], "hsw"));
        graph.Node.Add(Node("Concat", ["a", "hsw"], "cat", Int("axis", 1)));
        // Channel shuffle: [N, 8, 6, 6] -> [N, 2, 4, 6, 6] -> transpose groups and channels -> [N, 8, 6, 6].
        graph.Node.Add(BatchSize("cat", "n1"));
        graph.Node.Add(Node("Cast", ["n1"], "n1i", Int("to", (long)TensorProto.Types.DataType.Int64)));
        graph.Node.Add(Node("Concat", ["n1i", "groups"], "shape1", Int("axis", 0)));
        graph.Node.Add(Node("Reshape", ["cat", "shape1"], "grouped"));
        graph.Node.Add(Node("Transpose", ["grouped"], "swapped", Ints("perm", 0, 2, 1, 3, 4)));
        graph.Node.Add(BatchSize("swapped", "n2"));
        graph.Node.Add(Node("Concat", ["n2", "rest"], "shape2", Int("axis", 0)));
        graph.Node.Add(Node("Reshape", ["swapped", "shape2"], "shuffled"));
        // Pad H by 1 and 1, W by 2 and 0 with 0.25: [N, 8, 8, 8]; rows 1, 3, 5, 7 and columns 7, 4, 1.
        graph.Node.Add(Node("Pad", ["shuffled", "pads", "padValue"], "padded", new AttributeProto { Name = "mode", S = ByteString.CopyFromUtf8("constant"), Type = AttributeProto.Types.AttributeType.String }));
        graph.Node.Add(Node("Slice", ["padded", "starts", "ends", "sliceAxes", "steps"], "sliced"));
        graph.Node.Add(Node("HardSigmoid", ["sliced"], "hsig0", Float("alpha", 0.3f), Float("beta", 0.4f)));
        // A squeeze-excitation style scale: one value per channel broadcast over the plane, on either side.
        graph.Node.Add(Node("GlobalAveragePool", ["sliced"], "se"));
        graph.Node.Add(Node("Mul", ["hsig0", "se"], "scaled"));
        graph.Node.Add(Node("Sub", ["se", "scaled"], "hsig"));
        graph.Node.Add(Node("Resize", ["hsig", "", "scales"], "resized", new AttributeProto { Name = "mode", S = ByteString.CopyFromUtf8("nearest"), Type = AttributeProto.Types.AttributeType.String }));
        graph.Node.Add(Node("Add", ["resized", "shift"], "shifted")); // so that Pow then Sqrt (an absolute value) keeps a sign error visible
        graph.Node.Add(Node("Pow", ["shifted", "two"], "squared"));
        graph.Node.Add(Node("Sqrt", ["squared"], "root"));
        graph.Node.Add(Node("Erf", ["root"], "erf"));
        graph.Node.Add(Node("ReduceMean", ["erf"], "pooled", Ints("axes", 2, 3), Int("keepdims", 0)));
        graph.Node.Add(Node("Gather", ["pooled", "picked"], "chosen", Int("axis", 1)));
        graph.Node.Add(Node("Div", ["chosen", "divisor"], "y"));
        var proto = OnnxGraphs.Model(graph);
        proto.OpsetImport[0].Version = 14; // HardSwish
        return new OnnxModel(proto, null, "shuffle test");
    }
}
