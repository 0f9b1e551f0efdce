using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

internal sealed partial class KernelEmitter
{
    public void ScaleShift(CodeWriter w, string method, ScaleShiftLayer s)
    {
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y, float[] scale, float[] shift)");
        w.Line($"const int Batch = {I(s.Batch)}, C = {I(s.C)}, S = {I(s.Spatial)};");
        w.Open("for (int n = 0; n < Batch; n++)");
        w.Open("for (int c = 0; c < C; c++)");
        w.Line("float a = scale[c], b = shift[c];");
        w.Line("int o = (n * C + c) * S;");
        w.Line("for (int i = 0; i < S; i++) y[o + i] = x[o + i] * a + b;");
        w.Close();
        w.Close();
        w.Close();
    }

    public void Binary(CodeWriter w, string method, BinaryLayer b)
    {
        var shape = b.OutputShape;
        string op = b.Op switch { BinaryOp.Add => "+", BinaryOp.Sub => "-", BinaryOp.Mul => "*", _ => "/" };
        w.Open($"private static void {method}(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)");
        int size = Shape.Size(shape);
        bool sameA = Shape.Size(b.A.Shape) == size, sameB = Shape.Size(b.B.Shape) == size;
        if (sameA && sameB)
        {
            w.Line($"const int Size = {I(size)};");
            w.Line("int i = 0;");
            if (size >= V)
            {
                w.Line("ref float ar = ref MemoryMarshal.GetReference(a); ref float br = ref MemoryMarshal.GetReference(b); ref float yr = ref MemoryMarshal.GetReference(y);");
                w.Line($"for (; i <= Size - {V}; i += {V}) ({VS}.LoadUnsafe(ref ar, (nuint)i) {op} {VS}.LoadUnsafe(ref br, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);");
            }
            w.Line($"for (; i < Size; i++) y[i] = a[i] {op} b[i];");
        }
        else if (PerBlockOperand(b) is { } block)
        {
            // One operand is whole, the other holds one value per block of Run outputs (a squeeze-excitation
            // scale [N,C,1,1] times [N,C,H,W], a per-channel constant): broadcast that value over the block.
            var (outer, run, scalarIsA) = block;
            string Apply(string s, string x) => scalarIsA ? $"{s} {op} {x}" : $"{x} {op} {s}";
            w.Line($"const int Outer = {I(outer)}, Run = {I(run)};");
            w.Line($"ReadOnlySpan<float> whole = {(scalarIsA ? "b" : "a")}, scalars = {(scalarIsA ? "a" : "b")};");
            w.Open("for (int o = 0; o < Outer; o++)");
            w.Line("float s = scalars[o];");
            w.Line("int i = 0, at = o * Run;");
            if (run >= V)
            {
                w.Line($"{VT} sv = {VS}.Create(s);");
                w.Line("ref float xr = ref MemoryMarshal.GetReference(whole); ref float yr = ref MemoryMarshal.GetReference(y);");
                w.Line($"for (; i <= Run - {V}; i += {V}) ({Apply("sv", $"{VS}.LoadUnsafe(ref xr, (nuint)(at + i))")}).StoreUnsafe(ref yr, (nuint)(at + i));");
            }
            w.Line($"for (; i < Run; i++) y[at + i] = {Apply("s", "whole[at + i]")};");
            w.Close();
        }
        else
        {
            // General broadcasting: nested loops over the output with per-operand strides (0 on broadcast axes).
            var sa = Shape.BroadcastStrides(b.A.Shape, shape);
            var sb = Shape.BroadcastStrides(b.B.Shape, shape);
            w.Line("int o = 0;");
            for (int d = 0; d < shape.Length; d++)
                w.Open($"for (int i{d} = 0; i{d} < {I(shape[d])}; i{d}++)");
            string Index(int[] strides) => shape.Length == 0 ? "0" :
                string.Join(" + ", Enumerable.Range(0, shape.Length).Where(d => strides[d] != 0).Select(d => $"i{d} * {I(strides[d])}").DefaultIfEmpty("0"));
            w.Line($"y[o++] = a[{Index(sa)}] {op} b[{Index(sb)}];");
            for (int d = 0; d < shape.Length; d++) w.Close();
        }
        w.Close();
    }

    /// <summary>
    /// (Outer, Run, whether A is the per-block operand) when one operand is the output's size and the other matches
    /// the output on its leading axes and is 1 on the rest; null otherwise.
    /// </summary>
    private static (int Outer, int Run, bool ScalarIsA)? PerBlockOperand(BinaryLayer b)
    {
        var shape = b.OutputShape;
        int size = Shape.Size(shape);
        foreach (var (whole, part, partIsA) in new[] { (b.A, b.B, false), (b.B, b.A, true) })
        {
            if (Shape.Size(whole.Shape) != size || whole.Shape.Length != shape.Length || part.Shape.Length > shape.Length) continue;
            var dims = Enumerable.Repeat(1, shape.Length - part.Shape.Length).Concat(part.Shape).ToArray();
            int k = shape.Length;
            while (k > 0 && dims[k - 1] == 1) k--;
            if (k == shape.Length || !dims.Take(k).SequenceEqual(shape.Take(k))) continue;
            return (Shape.Size(shape, 0, k), Shape.Size(shape, k, shape.Length), partIsA);
        }
        return null;
    }

    public void Unary(CodeWriter w, string method, UnaryLayer u)
    {
        int size = Shape.Size(u.OutputShape);
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y)");
        w.Line($"const int Size = {I(size)};");
        w.Line("int i = 0;");
        var gate = Gate.Of(u);
        string? vector = u.Function switch
        {
            UnaryFunction.Relu => VAct(Bounds.Of(Activation.Relu), "v"),
            UnaryFunction.Clip => VAct(new Bounds(u.Min, u.Max), "v"),
            _ when gate is { } g && size >= V => Call(g, "v", VT),
            _ => null,
        };
        if (vector is not null && size >= V)
        {
            w.Line("ref float xr = ref MemoryMarshal.GetReference(x); ref float yr = ref MemoryMarshal.GetReference(y);");
            w.Line($"for (; i <= Size - {V}; i += {V}) {{ {VT} v = {VS}.LoadUnsafe(ref xr, (nuint)i); ({vector}).StoreUnsafe(ref yr, (nuint)i); }}");
        }
        var f = u.Function switch
        {
            UnaryFunction.Relu => "MathF.Max(v, 0f)",
            UnaryFunction.Clip => $"MathF.Min(MathF.Max(v, {F(u.Min)}), {F(u.Max)})",
            _ when gate is { } g => Call(g, "v", "float"),
            UnaryFunction.Tanh => "MathF.Tanh(v)",
            UnaryFunction.Erf => "Erf(v)",
            UnaryFunction.Sqrt => "MathF.Sqrt(v)",
            UnaryFunction.Pow => u.Alpha switch { 1f => "v", 2f => "v * v", 3f => "v * v * v", 0.5f => "MathF.Sqrt(v)", _ => $"MathF.Pow(v, {F(u.Alpha)})" },
            _ => throw new InvalidOperationException(u.Function.ToString()),
        };
        if (u.Function == UnaryFunction.Erf)
        {
            // .NET has no erf: Abramowitz and Stegun 7.1.26 in double, absolute error below 1.5e-7.
            w.Open("static float Erf(float v)");
            w.Line("double a = Math.Abs(v), t = 1.0 / (1.0 + 0.3275911 * a);");
            w.Line("double e = 1.0 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.Exp(-a * a);");
            w.Line("return (float)(v < 0f ? -e : e);");
            w.Close();
        }
        w.Line($"for (; i < Size; i++) {{ float v = x[i]; y[i] = {f}; }}");
        w.Close();
    }

    public void Concat(CodeWriter w, string method, ConcatLayer c)
    {
        var shape = c.OutputShape;
        int outer = Shape.Size(shape, 0, c.Axis), inner = Shape.Size(shape, c.Axis + 1, shape.Length);
        var parameters = string.Join(", ", c.Operands.Select((_, i) => $"ReadOnlySpan<float> x{i}"));
        w.Open($"private static void {method}({parameters}, Span<float> y)");
        w.Line($"const int Outer = {I(outer)}, Row = {I(shape[c.Axis] * inner)};");
        w.Open("for (int o = 0; o < Outer; o++)");
        int offset = 0;
        for (int i = 0; i < c.Operands.Length; i++)
        {
            int chunk = c.Operands[i].Shape[c.Axis] * inner;
            w.Line($"x{i}.Slice(o * {I(chunk)}, {I(chunk)}).CopyTo(y.Slice(o * Row + {I(offset)}, {I(chunk)}));");
            offset += chunk;
        }
        w.Close();
        w.Close();
    }

    public void Softmax(CodeWriter w, string method, SoftmaxLayer s)
    {
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y)");
        w.Line($"const int Outer = {I(s.Outer)}, D = {I(s.AxisSize)}, Inner = {I(s.Inner)};");
        w.Open("for (int o = 0; o < Outer; o++)");
        w.Open("for (int r = 0; r < Inner; r++)");
        w.Line("int start = o * D * Inner + r;");
        w.Line("float max = float.NegativeInfinity;");
        w.Line("for (int d = 0; d < D; d++) max = MathF.Max(max, x[start + d * Inner]);");
        w.Line("float sum = 0f;");
        if (s.Log)
        {
            w.Line("for (int d = 0; d < D; d++) sum += MathF.Exp(x[start + d * Inner] - max);");
            w.Line("float log = MathF.Log(sum);");
            w.Line("for (int d = 0; d < D; d++) y[start + d * Inner] = x[start + d * Inner] - max - log;");
        }
        else
        {
            w.Line("for (int d = 0; d < D; d++) { float e = MathF.Exp(x[start + d * Inner] - max); y[start + d * Inner] = e; sum += e; }");
            w.Line("for (int d = 0; d < D; d++) y[start + d * Inner] /= sum;");
        }
        w.Close();
        w.Close();
        w.Close();
    }

    public void Lrn(CodeWriter w, string method, LrnLayer l)
    {
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y)");
        w.Line($"const int Batch = {I(l.Batch)}, C = {I(l.C)}, S = {I(l.Spatial)};");
        w.Line($"const int Before = {I((l.Size - 1) / 2)}, After = {I((l.Size - 1) - (l.Size - 1) / 2)};");
        w.Line($"const float AlphaOverSize = {F(l.Alpha / l.Size)}, Beta = {F(l.Beta)}, Bias = {F(l.Bias)};");
        w.Open("for (int n = 0; n < Batch; n++)");
        w.Open("for (int c = 0; c < C; c++)");
        w.Open("for (int i = 0; i < S; i++)");
        w.Line("float sum = 0f;");
        w.Line("for (int k = Math.Max(0, c - Before); k <= Math.Min(C - 1, c + After); k++) { float v = x[(n * C + k) * S + i]; sum += v * v; }");
        w.Line("int at = (n * C + c) * S + i;");
        w.Line("y[at] = x[at] / MathF.Pow(Bias + AlphaOverSize * sum, Beta);");
        w.Close();
        w.Close();
        w.Close();
        w.Close();
    }
}
