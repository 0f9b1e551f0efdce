using Scalpel.Onnx.Layers;

namespace Scalpel.CodeGen;

/// <summary>
/// A [rows x cols] weight matrix in a sparse format, derived from its zeros. Grouped CSR groups cover
/// the columns [0, FullColumns) in aligned runs of GroupWidth; the last cols % GroupWidth columns (the
/// tail) stay dense in <see cref="Tail"/>, so no vector load ever reads past a row.
/// </summary>
public sealed class SparseMatrix
{
    public required int Rows { get; init; }
    public required int Cols { get; init; }
    public required int GroupWidth { get; init; }
    /// <summary>Kept values: one per nonzero (CSR) or GroupWidth per kept group.</summary>
    public required float[] Values { get; init; }
    /// <summary>Column of each nonzero (CSR) or the first column of each group.</summary>
    public required int[] Columns { get; init; }
    /// <summary>Rows + 1 offsets into Columns.</summary>
    public required int[] RowStarts { get; init; }
    /// <summary>[rows x TailWidth] dense tail (grouped CSR only).</summary>
    public float[] Tail { get; init; } = [];
    /// <summary>
    /// Groups run along the outputs (<see cref="OutputGrouped"/>): RowStarts then index blocks of GroupWidth rows,
    /// each group is one column's GroupWidth weights (zero-padded in a partial last block), and there is no tail.
    /// </summary>
    public bool AlongOutputs { get; init; }

    public int FullColumns => AlongOutputs ? Cols : Cols / GroupWidth * GroupWidth;
    public int TailWidth => Cols - FullColumns;
    public int Entries => Columns.Length;
    /// <summary>Rows of RowStarts: output rows, or blocks of GroupWidth output rows along outputs.</summary>
    public int PointerRows => RowStarts.Length - 1;
    /// <summary>The largest column index a kernel may be given (the start of the last full group along inputs).</summary>
    public int MaxColumn => AlongOutputs ? Cols - 1 : FullColumns - GroupWidth;

    /// <summary>Bytes per column index: the smallest integer type that holds the largest column.</summary>
    public int IndexBytes => IndexBytesFor(Cols);
    public int RowStartBytes => RowStartBytesFor(Entries);

    private static int IndexBytesFor(int cols) => cols <= 256 ? 1 : cols <= 65536 ? 2 : 4;
    private static int RowStartBytesFor(long entries) => entries <= 65535 ? 2 : 4;

    /// <summary>
    /// <see cref="Bytes"/> of a [rows x cols] matrix with <paramref name="sparsity"/> of its groups removed, before
    /// pruning chooses which: a plan can tell whether a level stores fewer bytes than dense (one index per kept group,
    /// so small sparsities in narrow groups store more; a partial block of rows along outputs is zero-padded, a
    /// partial group along inputs stays dense in the tail).
    /// </summary>
    public static double EstimatedBytes(int rows, int cols, int groupWidth, bool alongOutputs, double sparsity)
    {
        int blocks = alongOutputs ? (rows + groupWidth - 1) / groupWidth : rows, tail = alongOutputs ? 0 : cols % groupWidth;
        double groups = alongOutputs ? (double)blocks * cols : (double)rows * (cols / groupWidth), entries = (1 - sparsity) * groups;
        return 4.0 * groupWidth * entries + 4.0 * rows * tail + IndexBytesFor(cols) * entries + RowStartBytesFor((long)Math.Ceiling(entries)) * (blocks + 1.0);
    }

    /// <summary>Model size as the paper counts it: values + indices + row pointers.</summary>
    public long Bytes => 4L * (Values.Length + Tail.Length) + (long)IndexBytes * Entries + (long)RowStartBytes * RowStarts.Length;

    public static SparseMatrix Csr(float[] weight, int rows, int cols)
    {
        var values = new List<float>();
        var columns = new List<int>();
        var starts = new int[rows + 1];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++)
            {
                float v = weight[r * cols + c];
                if (v == 0f) continue;
                values.Add(v);
                columns.Add(c);
            }
            starts[r + 1] = columns.Count;
        }
        return new SparseMatrix { Rows = rows, Cols = cols, GroupWidth = 1, Values = values.ToArray(), Columns = columns.ToArray(), RowStarts = starts };
    }

    public static SparseMatrix GroupedCsr(float[] weight, int rows, int cols, int groupWidth)
    {
        int full = cols / groupWidth * groupWidth, tailWidth = cols - full;
        var values = new List<float>();
        var columns = new List<int>();
        var starts = new int[rows + 1];
        var tail = new float[rows * tailWidth];
        for (int r = 0; r < rows; r++)
        {
            var row = weight.AsSpan(r * cols, cols);
            for (int c = 0; c < full; c += groupWidth)
            {
                var group = row.Slice(c, groupWidth);
                if (!group.ContainsAnyExcept(0f)) continue;
                foreach (var v in group) values.Add(v);
                columns.Add(c);
            }
            starts[r + 1] = columns.Count;
            row[full..].CopyTo(tail.AsSpan(r * tailWidth, tailWidth));
        }
        return new SparseMatrix
        {
            Rows = rows, Cols = cols, GroupWidth = groupWidth, Values = values.ToArray(), Columns = columns.ToArray(), RowStarts = starts, Tail = tail,
        };
    }

    /// <summary>
    /// Blocks of <paramref name="groupWidth"/> consecutive rows; a group is one column of a block, kept when any of
    /// its weights is nonzero. The last block of a row count that is not a multiple is padded with zero rows.
    /// </summary>
    public static SparseMatrix OutputGrouped(float[] weight, int rows, int cols, int groupWidth)
    {
        int blocks = (rows + groupWidth - 1) / groupWidth;
        var values = new List<float>();
        var columns = new List<int>();
        var starts = new int[blocks + 1];
        for (int b = 0; b < blocks; b++)
        {
            int first = b * groupWidth, height = Math.Min(groupWidth, rows - first);
            for (int c = 0; c < cols; c++)
            {
                bool any = false;
                for (int i = 0; i < height && !any; i++) any = weight[(first + i) * cols + c] != 0f;
                if (!any) continue;
                for (int i = 0; i < groupWidth; i++) values.Add(i < height ? weight[(first + i) * cols + c] : 0f);
                columns.Add(c);
            }
            starts[b + 1] = columns.Count;
        }
        return new SparseMatrix
        {
            Rows = rows, Cols = cols, GroupWidth = groupWidth, Values = values.ToArray(), Columns = columns.ToArray(), RowStarts = starts, AlongOutputs = true,
        };
    }

    /// <summary>The matrix in a layer's sparse format.</summary>
    public static SparseMatrix For(WeightFormat format, float[] weight, int rows, int cols, int groupWidth) => format switch
    {
        WeightFormat.Csr => Csr(weight, rows, cols),
        WeightFormat.GroupedCsr => GroupedCsr(weight, rows, cols, groupWidth),
        WeightFormat.OutputGrouped => OutputGrouped(weight, rows, cols, groupWidth),
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "not a sparse format"),
    };

    /// <summary>Dense fp32 bytes of the same matrix, the baseline of size reductions.</summary>
    public static long DenseBytes(int rows, int cols) => 4L * rows * cols;
}
