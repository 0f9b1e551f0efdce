using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

/// <summary>Kernels that move data: Transpose, Slice, Split, Gather, Pad and nearest Resize.</summary>
internal sealed partial class KernelEmitter
{
    public void StridedCopy(CodeWriter w, string method, StridedCopyLayer c)
    {
        w.Line($"// {c.Operator}: y in row-major order over {Shape.Format(c.Counts)}, each element read from x at offset + sum of index * stride.");
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y)");
        CopyLoops(w, c.Counts, c.Offset, c.Strides, 0, Shape.Strides(c.Counts));
        w.Close();
    }

    public void Pad(CodeWriter w, string method, PadLayer p)
    {
        w.Line($"// Pad: y filled with {F(p.Value)}, then x copied in at [{string.Join(",", p.Begin)}].");
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y)");
        w.Line($"y.Fill({F(p.Value)});");
        var strides = Shape.Strides(p.OutputShape);
        CopyLoops(w, p.InputShape, 0, Shape.Strides(p.InputShape), p.Begin.Zip(strides, (b, s) => b * s).Sum(), strides);
        w.Close();
    }

    public void Gather(CodeWriter w, string method, GatherLayer g)
    {
        w.Line("// Gather: for each outer block, the rows of x that the constant indices name, in order.");
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y, int[] indices)");
        w.Line($"const int Outer = {I(g.Outer)}, AxisSize = {I(g.AxisSize)}, Inner = {I(g.Inner)}, Count = {I(g.Indices.Length)};");
        w.Open("for (int o = 0; o < Outer; o++)");
        w.Line("for (int k = 0; k < Count; k++) x.Slice((o * AxisSize + indices[k]) * Inner, Inner).CopyTo(y.Slice((o * Count + k) * Inner, Inner));");
        w.Close();
        w.Close();
    }

    /// <summary>Nearest resize: per axis that changes size, a table of the input index each output index reads.</summary>
    public void Resize(CodeWriter w, string method, ResizeLayer r, IReadOnlyList<int> tableAxes)
    {
        w.Line("// Resize (nearest): y[i0, i1, ...] = x[s0[i0], s1[i1], ...], where an axis that keeps its size reads itself.");
        var parameters = string.Concat(tableAxes.Select(d => $", int[] s{d}"));
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y{parameters})");
        var inStrides = Shape.Strides(r.InputShape);
        int rank = r.OutputShape.Length;
        w.Line("int o = 0;");
        for (int d = 0; d < rank; d++) w.Open($"for (int i{d} = 0; i{d} < {I(r.OutputShape[d])}; i{d}++)");
        var index = string.Join(" + ", Enumerable.Range(0, rank).Where(d => r.InputShape[d] > 1)
            .Select(d => $"{(tableAxes.Contains(d) ? $"s{d}[i{d}]" : $"i{d}")} * {I(inStrides[d])}").DefaultIfEmpty("0"));
        w.Line($"y[o++] = x[{index}];");
        for (int d = 0; d < rank; d++) w.Close();
        w.Close();
    }

    /// <summary>Linear resize: along each interpolated axis, a lower and an upper input index and the upper one's weight.</summary>
    public void LinearResize(CodeWriter w, string method, ResizeLayer r, IReadOnlyList<int> axes)
    {
        w.Line("// Resize (linear): y[i0, i1, ...] blends the input at the lower and upper index of each interpolated axis (bilinear for two).");
        var parameters = string.Concat(axes.Select(d => $", int[] lo{d}, int[] up{d}, float[] f{d}"));
        w.Open($"private static void {method}(ReadOnlySpan<float> x, Span<float> y{parameters})");
        var inStrides = Shape.Strides(r.InputShape);
        int rank = r.OutputShape.Length;
        w.Line("int o = 0;");
        for (int d = 0; d < rank; d++)
        {
            w.Open($"for (int i{d} = 0; i{d} < {I(r.OutputShape[d])}; i{d}++)");
            if (axes.Contains(d))
                w.Line($"int l{d} = lo{d}[i{d}] * {I(inStrides[d])}, u{d} = up{d}[i{d}] * {I(inStrides[d])}; float w{d} = f{d}[i{d}];");
        }
        var fixedPart = string.Join(" + ", Enumerable.Range(0, rank).Where(d => !axes.Contains(d) && r.InputShape[d] > 1).Select(d => $"i{d} * {I(inStrides[d])}").DefaultIfEmpty("0"));
        w.Line($"int at = {fixedPart};");
        string Blend(int k, string offset)
        {
            if (k == axes.Count) return $"x[at{offset}]";
            int d = axes[k];
            return $"({Blend(k + 1, $"{offset} + l{d}")} * (1f - w{d}) + {Blend(k + 1, $"{offset} + u{d}")} * w{d})";
        }
        w.Line($"y[o++] = {Blend(0, "")};");
        for (int d = 0; d < rank; d++) w.Close();
        w.Close();
    }

    /// <summary>
    /// y[dst + sum_d i_d * dstStrides[d]] = x[src + sum_d i_d * srcStrides[d]] over <paramref name="counts"/>. Axes that
    /// are contiguous in both are merged, and a run contiguous in both becomes one span copy.
    /// </summary>
    private static void CopyLoops(CodeWriter w, int[] counts, int src, int[] srcStrides, int dst, int[] dstStrides)
    {
        var axes = new List<(int Count, int Src, int Dst)>();
        for (int d = 0; d < counts.Length; d++)
            if (counts[d] > 1) axes.Add((counts[d], srcStrides[d], dstStrides[d]));
        for (int d = axes.Count - 2; d >= 0; d--)
            if (axes[d].Src == axes[d + 1].Src * axes[d + 1].Count && axes[d].Dst == axes[d + 1].Dst * axes[d + 1].Count)
            {
                axes[d] = (axes[d].Count * axes[d + 1].Count, axes[d + 1].Src, axes[d + 1].Dst);
                axes.RemoveAt(d + 1);
            }
        bool run = axes.Count > 0 && axes[^1].Src == 1 && axes[^1].Dst == 1;
        int loops = run ? axes.Count - 1 : axes.Count;
        for (int d = 0; d < loops; d++) w.Open($"for (int i{d} = 0; i{d} < {I(axes[d].Count)}; i{d}++)");
        string At(int offset, Func<(int Count, int Src, int Dst), int> stride) =>
            string.Join(" + ", Enumerable.Range(0, loops).Select(d => $"i{d} * {I(stride(axes[d]))}").Prepend(I(offset)).Where(t => t != "0").DefaultIfEmpty("0"));
        if (run)
            w.Line($"x.Slice({At(src, a => a.Src)}, {I(axes[^1].Count)}).CopyTo(y.Slice({At(dst, a => a.Dst)}, {I(axes[^1].Count)}));");
        else
            w.Line($"y[{At(dst, a => a.Dst)}] = x[{At(src, a => a.Src)}];");
        for (int d = 0; d < loops; d++) w.Close();
    }
}
