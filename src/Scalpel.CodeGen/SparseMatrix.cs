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

    public int FullColumns => Cols / GroupWidth * GroupWidth;
    public int TailWidth => Cols - FullColumns;
    public int Entries => Columns.Length;

    /// <summary>Bytes per column index: the smallest integer type that holds the largest column.</summary>
    public int IndexBytes => Cols <= 256 ? 1 : Cols <= 65536 ? 2 : 4;
    public int RowStartBytes => Entries <= 65535 ? 2 : 4;

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

    /// <summary>Dense fp32 bytes of the same matrix, the baseline of size reductions.</summary>
    public static long DenseBytes(int rows, int cols) => 4L * rows * cols;
}
