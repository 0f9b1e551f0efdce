using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

/// <summary>
/// An element-wise function a conv epilogue applies after its clamp (SiLU after every EfficientNet conv, HardSwish in
/// MobileNetV3), with the constants of its ONNX operator.
/// </summary>
internal readonly record struct Gate(UnaryFunction Function, float Alpha, float Beta)
{
    /// <summary>The gate a unary layer computes, or null for functions an epilogue does not take.</summary>
    public static Gate? Of(UnaryLayer u) => u.Function is UnaryFunction.Sigmoid or UnaryFunction.Silu or UnaryFunction.HardSigmoid
        or UnaryFunction.HardSwish or UnaryFunction.LeakyRelu ? new Gate(u.Function, u.Alpha, u.Beta) : null;
}

/// <summary>
/// The functions kernels call by name: written once per generated class, as overloads for float and for each vector
/// type used, and only those some kernel calls. Vector exp is this class's own: System.Runtime.Intrinsics'
/// Vector256.Exp measured 3-8x slower than a scalar MathF.Exp loop on this project's machines.
/// </summary>
internal sealed partial class KernelEmitter
{
    /// <summary>(function, type) pairs some kernel calls, type "float" or a vector type; sorted, so the text is stable.</summary>
    private readonly SortedSet<(string Function, string Type)> _calls = new(Comparer<(string Function, string Type)>.Create((a, b) =>
        string.CompareOrdinal(a.Function, b.Function) is var c and not 0 ? c : string.CompareOrdinal(a.Type, b.Type)));

    /// <summary>A call of the gate on a value of the given type ("float" or a vector type such as "Vector256&lt;float&gt;").</summary>
    public string Call(Gate g, string value, string type)
    {
        string name = g.Function.ToString();
        Need(name, type);
        return g.Function switch
        {
            UnaryFunction.HardSigmoid => $"{name}({value}, {F(g.Alpha)}, {F(g.Beta)})",
            UnaryFunction.LeakyRelu => $"{name}({value}, {F(g.Alpha)})",
            _ => $"{name}({value})",
        };
    }

    private void Need(string function, string type)
    {
        _calls.Add((function, type));
        if (function is nameof(UnaryFunction.Sigmoid) or nameof(UnaryFunction.Silu) && type.StartsWith("Vector", StringComparison.Ordinal)) _calls.Add(("ExpOfNegative", type));
    }

    /// <summary>
    /// The statement that applies the gate in place to a span of outputs just stored, while they are in cache. A pass
    /// rather than a call per vector in the tile: the tile's calls outgrew the JIT's inlining budget, and a call left
    /// in the loop spilled every accumulator (EfficientNet-B0's pointwise convs ran 5x slower).
    /// </summary>
    public string GatePass(Gate g, string span)
    {
        Need(g.Function.ToString(), VT);
        Need(g.Function.ToString(), "float");
        return Call(g, span, "Span<float>") + ";";
    }

    /// <summary>Writes the functions the kernels called.</summary>
    public void Functions(CodeWriter w)
    {
        foreach (var (function, type) in _calls)
        {
            bool scalar = type == "float";
            string vs = scalar ? "" : type[..type.IndexOf('<')], one = scalar ? "1f" : $"{type}.One";
            string Clamp01(string v) => scalar ? $"MathF.Max(0f, MathF.Min(1f, {v}))" : VAct(new Bounds(0f, 1f), v, type, vs);
            string Const(float k) => scalar ? F(k) : $"{vs}.Create({F(k)})";
            w.Line();
            if (type == "Span<float>")
            {
                EmitPass(w, function);
                continue;
            }
            w.Line("[MethodImpl(MethodImplOptions.AggressiveInlining)]");
            switch (function)
            {
                case "ExpOfNegative":
                    EmitExpOfNegative(w, type, vs);
                    break;
                case "Transpose":
                    EmitTranspose(w, type, vs);
                    break;
                case "Prefetch":
                    EmitPrefetch(w);
                    break;
                case nameof(UnaryFunction.Sigmoid):
                    w.Line($"private static {type} Sigmoid({type} v) => {one} / ({one} + {(scalar ? "MathF.Exp(-v)" : "ExpOfNegative(v)")});");
                    break;
                case nameof(UnaryFunction.Silu):
                    w.Line($"private static {type} Silu({type} v) => v / ({one} + {(scalar ? "MathF.Exp(-v)" : "ExpOfNegative(v)")});");
                    break;
                case nameof(UnaryFunction.HardSigmoid):
                    w.Line($"private static {type} HardSigmoid({type} v, float alpha, float beta) => {Clamp01($"v * alpha + {(scalar ? "beta" : $"{vs}.Create(beta)")}")};");
                    break;
                case nameof(UnaryFunction.HardSwish):
                    w.Line($"private static {type} HardSwish({type} v) => v * {Clamp01($"v * {F(1f / 6f)} + {Const(0.5f)}")};");
                    break;
                case nameof(UnaryFunction.LeakyRelu):
                    w.Line(scalar
                        ? "private static float LeakyRelu(float v, float alpha) => v >= 0f ? v : alpha * v;"
                        : $"private static {type} LeakyRelu({type} v, float alpha) => {vs}.ConditionalSelect({vs}.GreaterThanOrEqual(v, {type}.Zero), v, v * alpha);");
                    break;
                default:
                    throw new InvalidOperationException(function);
            }
        }
    }

    /// <summary>The in-place pass over a span: vectors, then the elements past the last whole vector.</summary>
    private void EmitPass(CodeWriter w, string function)
    {
        var (parameters, arguments) = function switch
        {
            nameof(UnaryFunction.HardSigmoid) => (", float alpha, float beta", ", alpha, beta"),
            nameof(UnaryFunction.LeakyRelu) => (", float alpha", ", alpha"),
            _ => ("", ""),
        };
        w.Open($"private static void {function}(Span<float> y{parameters})");
        w.Line("ref float r = ref MemoryMarshal.GetReference(y);");
        w.Line("int i = 0;");
        w.Line($"for (; i <= y.Length - {V}; i += {V}) {function}({VS}.LoadUnsafe(ref r, (nuint)i){arguments}).StoreUnsafe(ref r, (nuint)i);");
        w.Line($"for (; i < y.Length; i++) Unsafe.Add(ref r, i) = {function}(Unsafe.Add(ref r, i){arguments});");
        w.Close();
    }

    /// <summary>Packed weights past which the conv kernels prefetch: smaller ones take a few microseconds to read whole.</summary>
    private const int PrefetchWeightBytes = 64 * 1024;

    /// <summary>How far ahead a stream of weights is prefetched: enough lines in flight to cover memory's latency.</summary>
    private const int PrefetchAheadBytes = 128 * 1024;

    /// <summary>Floats in a 64-byte cache line, the unit a prefetch asks for.</summary>
    private const int LineFloats = 16;

    /// <summary>The index of the last cache line of <paramref name="floats"/> weights (-1 when they fill none).</summary>
    private static int LastLine(long floats) => (int)(floats / LineFloats) - 1;

    /// <summary>
    /// The start of a group's share of the next block's weights (wn), which the kernels that prefetch it spread over
    /// the block's first groups of columns: group <paramref name="column"/> / <paramref name="group"/> asks for the
    /// lines from that times <paramref name="steps"/> on, one per step of its loop (<see cref="PrefetchStep"/>).
    /// </summary>
    private static string PrefetchStart(string column, int group, string steps) => $"int f = {column} / {I(group)} * {steps};";

    /// <summary>The prefetch of line f + <paramref name="step"/> of the next block's weights, the block's last line past its end.</summary>
    private string PrefetchStep(string step, int lastLine) => Prefetch($"Unsafe.Add(ref wn, Math.Min(f + {step}, {I(lastLine)}) * {I(LineFloats)})");

    /// <summary>A call that asks the cache for the line holding <paramref name="at"/>, which must lie in the array it refers to.</summary>
    public string Prefetch(string at)
    {
        Need("Prefetch", "float");
        return $"Prefetch(ref {at});";
    }

    /// <summary>
    /// The one unsafe member of generated code: a hint that fetches a cache line into L2 ahead of its use. It
    /// cannot fault or change a value, and it compiles to nothing where the CPU has no SSE (Arm).
    /// </summary>
    private static void EmitPrefetch(CodeWriter w)
    {
        w.Open("private static unsafe void Prefetch(ref float at)");
        w.Line("if (Sse.IsSupported) Sse.Prefetch1(Unsafe.AsPointer(ref at));");
        w.Close();
    }

    /// <summary>
    /// A block of lanes x lanes floats transposed: row i of the source (a vector at src + i x srcStride) becomes column
    /// i of the destination. The off-diagonal half-blocks of every 2b x 2b block swap, for b = lanes / 2 down to 1:
    /// lane k of row i meets lane k ^ b of row i + b, one shuffle and one select per row a step, log2(lanes) steps,
    /// where a scalar copy takes a load and a store per float.
    /// </summary>
    private void EmitTranspose(CodeWriter w, string vt, string vs)
    {
        int lanes = int.Parse(vs["Vector".Length..], System.Globalization.CultureInfo.InvariantCulture) / 32;
        w.Open($"private static void Transpose(ref float src, nint srcStride, ref float dst, nint dstStride)");
        for (int i = 0; i < lanes; i++)
            w.Line($"{vt} r{i} = {vs}.LoadUnsafe(ref Unsafe.Add(ref src, {(i == 0 ? "0" : $"{i} * srcStride")}));");
        for (int b = lanes / 2; b >= 1; b /= 2)
        {
            var order = string.Join(", ", Enumerable.Range(0, lanes).Select(k => I(k ^ b)));
            var high = string.Join(", ", Enumerable.Range(0, lanes).Select(k => (k & b) != 0 ? "-1" : "0"));
            w.Open($"// swap the off-diagonal {b}x{b} blocks");
            w.Line($"{vs}<int> order = {vs}.Create({order}), high = {vs}.Create({high});");
            for (int i = 0; i < lanes; i++)
            {
                if ((i & b) != 0) continue;
                w.Line($"{vt} a{i} = {vs}.ConditionalSelect(high.AsSingle(), {vs}.Shuffle(r{i + b}, order), r{i});");
                w.Line($"r{i + b} = {vs}.ConditionalSelect(high.AsSingle(), r{i + b}, {vs}.Shuffle(r{i}, order));");
                w.Line($"r{i} = a{i};");
            }
            w.Close();
        }
        for (int i = 0; i < lanes; i++)
            w.Line($"r{i}.StoreUnsafe(ref Unsafe.Add(ref dst, {(i == 0 ? "0" : $"{i} * dstStride")}));");
        w.Close();
    }

    /// <summary>
    /// e^-x per lane, as 2^t with t = -x log2(e) clamped to [-126, 126] (2^n stays a normal float; the logistic
    /// functions that call it are flat beyond): n = t rounded to nearest, 2^(t - n) on [-0.5, 0.5] by a degree-5
    /// polynomial (relative error 1.8e-7, fitted for this range), 2^n put in the exponent bits. Four operations fewer
    /// than Cephes' e^x (natural-log range reduction in two parts, degree 7); t's own rounding adds at most |t| 6e-8.
    /// </summary>
    private void EmitExpOfNegative(CodeWriter w, string vt, string vs)
    {
        w.Open($"private static {vt} ExpOfNegative({vt} x)");
        w.Line($"{vt} t = {vs}.MinNative({vs}.Create(126f), {vs}.MaxNative({vs}.Create(-126f), x * {vs}.Create(-1.442695f)));");
        w.Line($"{vt} n = {vs}.Round(t);");
        w.Line($"{vt} f = t - n;");
        w.Line($"{vt} p = {Fma($"{vs}.Create(1.3268215E-3f)", "f", $"{vs}.Create(9.6715111E-3f)", vs)};");
        foreach (var k in new[] { "5.5507217E-2f", "0.24022242f", "0.693147f" })
            w.Line($"p = {Fma("p", "f", $"{vs}.Create({k})", vs)};");
        w.Line($"p = {Fma("p", "f", $"{vt}.One", vs)};");
        w.Line($"return p * {vs}.ShiftLeft({vs}.ConvertToInt32(n) + {vs}.Create(127), 23).AsSingle();");
        w.Close();
    }
}
