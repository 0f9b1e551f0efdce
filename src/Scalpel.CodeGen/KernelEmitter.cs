using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

/// <summary>Emits one kernel method per layer, with its sizes as constants and vectors of the target's width.</summary>
internal sealed partial class KernelEmitter(CodeTarget target, IReadOnlyDictionary<string, MeasuredKernel>? measured = null)
{
    /// <summary>The kernel the target forces, else the one measured for this layer, else Auto (the cost model).</summary>
    private ConvKernel KernelFor(ConvLayer c) =>
        target.ConvKernel != ConvKernel.Auto ? target.ConvKernel : measured is not null && measured.TryGetValue(c.Name, out var m) ? m.Kernel : ConvKernel.Auto;

    /// <summary>Output rows computed together by the dense mat-vec (one input load feeds this many FMAs).</summary>
    private const int DenseRows = 4;
    /// <summary>
    /// Output channels computed together by the conv GEMM micro-kernel: 8 where the target has 32 vector registers
    /// (AVX-512), so a k step's two input loads and 8 broadcasts feed 16 FMAs; 4 with 16 registers.
    /// </summary>
    private int GemmRows => target.SimdBits >= 512 ? 8 : 4;

    private int V => target.Lanes;
    private string VT => $"Vector{target.SimdBits}<float>";
    private string VS => $"Vector{target.SimdBits}";

    /// <summary>a * b + acc on vectors of the target's width, or of <paramref name="vs"/> ("Vector128") where given.</summary>
    private string Fma(string a, string b, string acc, string? vs = null)
    {
        vs ??= VS;
        return target.Fma ? $"{vs}.FusedMultiplyAdd({a}, {b}, {acc})" : $"{vs}.Add({vs}.Multiply({a}, {b}), {acc})";
    }

    private const string Hot = "[MethodImpl(MethodImplOptions.AggressiveOptimization)]";

    /// <summary>Shuffle indices that put a vector's even lanes in its lower half and its odd lanes in the upper half.</summary>
    private string EvenLanesFirst => EvenLanesFirstOf(V);

    /// <summary><see cref="EvenLanesFirst"/> for a vector of <paramref name="lanes"/> floats (a narrower one than the target's, say).</summary>
    private static string EvenLanesFirstOf(int lanes) =>
        $"Vector{lanes * 32}.Create({string.Join(", ", Enumerable.Range(0, lanes).Select(i => I(2 * i % lanes + 2 * i / lanes)))})";

    /// <summary>"a + k" with the constants folded when emitting: "a" when k is 0, "k" when a is empty.</summary>
    private static string Sum(string a, long k) => k == 0 ? (a.Length == 0 ? "0" : a) : a.Length == 0 ? I(k) : $"{a} + {I(k)}";

    /// <summary>"a + b", leaving out an empty or zero term ("0" when both are).</summary>
    private static string Sum(string a, string b) => b is "" or "0" ? (a.Length == 0 ? "0" : a) : a is "" or "0" ? b : $"{a} + {b}";

    /// <summary>"(a + k) * f", or "a * f" when k is 0.</summary>
    private static string Scaled(string a, long k, string f) => k == 0 ? $"{a} * {f}" : $"({a} + {I(k)}) * {f}";

    /// <summary>A cast to nuint that parenthesises only a compound expression.</summary>
    private static string Nuint(string e) => e.All(char.IsAsciiLetterOrDigit) ? $"(nuint){e}" : $"(nuint)({e})";

    /// <summary>
    /// Opens the loop over <paramref name="count"/> samples (or sample groups) n; a single one needs no loop, only a
    /// block, and <see cref="Part"/> then never names n.
    /// </summary>
    private static void OpenSamples(CodeWriter w, int count, string comment = "")
    {
        if (count > 1) w.Open($"for (int n = 0; n < {I(count)}; n++){comment}");
        else w.OpenBlock();
    }

    /// <summary>Sample n's part of a span (from <paramref name="offset"/> in it): the span itself where that is all of it.</summary>
    private static string Part(string span, int size, int count, string offset = "", int? length = null)
    {
        string start = Sum(count > 1 ? $"n * {I(size)}" : "", offset);
        return start == "0" && (length ?? size) == size && count == 1 ? span : $"{span}.Slice({start}, {I(length ?? size)})";
    }

    private static string Act(Activation a, string value) => Act(Bounds.Of(a), value);
    private string VAct(Activation a, string value) => VAct(Bounds.Of(a), value);

    private static string Act(Bounds b, string value)
    {
        if (b.Min > float.NegativeInfinity) value = $"MathF.Max({value}, {F(b.Min)})";
        return b.Max < float.PositiveInfinity ? $"MathF.Min({value}, {F(b.Max)})" : value;
    }

    private string VAct(Bounds b, string value) => VAct(b, value, VT, VS);

    /// <summary>
    /// The bounds on vectors of the given type (the half vectors of stride-2 kernels, say). MaxNative and MinNative
    /// are one instruction each, where Max and Min order -0 below +0 and propagate NaN in several (a max pool ran at
    /// 2.3x the time). The value goes second: x86 returns the second operand when either is NaN, so NaN still passes.
    /// </summary>
    private static string VAct(Bounds b, string value, string vt, string vs)
    {
        if (b.Min > float.NegativeInfinity) value = b.Min == 0f ? $"{vs}.MaxNative({vt}.Zero, {value})" : $"{vs}.MaxNative({vs}.Create({F(b.Min)}), {value})";
        return b.Max < float.PositiveInfinity ? $"{vs}.MinNative({vs}.Create({F(b.Max)}), {value})" : value;
    }

    private static bool IsPointwise(ConvLayer c) =>
        c.Window.KH == 1 && c.Window.KW == 1 && c.Window.StrideH == 1 && c.Window.StrideW == 1 && c.Window.PadTop == 0 && c.Window.PadLeft == 0 && c.Window.OH == c.Window.H && c.Window.OW == c.Window.W;
}

/// <summary>
/// The range a conv kernel clamps each output to before storing it: Relu is [0, inf), a Clip that follows the
/// conv is folded in, so that no separate pass reads and writes the feature map again.
/// </summary>
internal readonly record struct Bounds(float Min, float Max)
{
    public static readonly Bounds None = new(float.NegativeInfinity, float.PositiveInfinity);

    public static Bounds Of(Activation a) => a == Activation.Relu ? new(0f, float.PositiveInfinity) : None;

    /// <summary>These bounds followed by a clamp to [min, max], or null when the two ranges do not overlap.</summary>
    public Bounds? Then(float min, float max)
    {
        var b = new Bounds(Math.Max(Min, min), Math.Min(Max, max));
        return b.Min <= b.Max ? b : null;
    }
}

/// <summary>
/// What a conv does to each output after its sum: add the bias, clamp to <see cref="Inner"/> and apply the gate; with a residual,
/// then add the same element of a second tensor (a ResNet skip) and clamp to <see cref="Outer"/>.
/// </summary>
internal readonly record struct Epilogue(Bounds Inner, bool Residual, Bounds Outer)
{
    /// <summary>A function applied after the <see cref="Inner"/> clamp, before any residual (SiLU, HardSwish).</summary>
    public Gate? Gate { get; init; }

    public static Epilogue Of(Bounds inner) => new(inner, false, Bounds.None);

    /// <summary>A layer's own activation and nothing folded into it.</summary>
    public static Epilogue Of(Activation activation) => Of(Bounds.Of(activation));
}
