using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

/// <summary>Emits one kernel method per layer, with its sizes as constants and vectors of the target's width.</summary>
internal sealed partial class KernelEmitter(CodeTarget target)
{
    /// <summary>Output rows computed together by the dense mat-vec (one input load feeds this many FMAs).</summary>
    private const int DenseRows = 4;
    /// <summary>Output channels computed together by the conv GEMM micro-kernel.</summary>
    private const int GemmRows = 4;

    private int V => target.Lanes;
    private string VT => $"Vector{target.SimdBits}<float>";
    private string VS => $"Vector{target.SimdBits}";

    private string Fma(string a, string b, string acc) =>
        target.Fma ? $"{VS}.FusedMultiplyAdd({a}, {b}, {acc})" : $"{VS}.Add({VS}.Multiply({a}, {b}), {acc})";

    private const string Hot = "[MethodImpl(MethodImplOptions.AggressiveOptimization)]";

    /// <summary>Shuffle indices that put a vector's even lanes in its lower half and its odd lanes in the upper half.</summary>
    private string EvenLanesFirst => $"{VS}.Create({string.Join(", ", Enumerable.Range(0, V).Select(i => I(2 * i % V + 2 * i / V)))})";

    private static string Act(Activation a, string value) => a == Activation.Relu ? $"MathF.Max({value}, 0f)" : value;
    private string VAct(Activation a, string value) => a == Activation.Relu ? $"{VS}.Max({value}, {VT}.Zero)" : value;

    private static bool IsPointwise(ConvLayer c) =>
        c.KH == 1 && c.KW == 1 && c.StrideH == 1 && c.StrideW == 1 && c.PadTop == 0 && c.PadLeft == 0 && c.OH == c.H && c.OW == c.W;
}
