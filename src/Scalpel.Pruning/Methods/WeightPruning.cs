namespace Scalpel.Pruning.Methods;

public enum Criterion
{
    /// <summary>Data-free: |w| for single weights, RMS of the group for groups (the paper's criterion).</summary>
    Magnitude,
    /// <summary>Activation-weighted energy w_g' H_gg w_g: how much the group contributes to the layer's output on calibration data.</summary>
    DataAware,
}

/// <summary>
/// Weight pruning of a [rows x cols] matrix (rows = outputs): unstructured (groupWidth 1, the paper's
/// traditional baseline) or SIMD-aware (aligned groups of groupWidth along the input dimension, or along the
/// output dimension for the output-grouped kernel), with an optional least-squares refit of the kept weights per
/// row (docs/pruning.md, "What it does").
/// </summary>
public static class WeightPruning
{
    /// <summary>Ridge damping, as a fraction of H's mean diagonal: keeps the per-row solves well conditioned.</summary>
    public const double Damping = 0.01;

    public sealed record Result(float[] Weight, double KeptFraction, bool Refit);

    /// <summary>
    /// Removes <paramref name="sparsity"/> of the prunable weights (all columns for groupWidth 1; the full groups
    /// otherwise, the cols % groupWidth tail staying dense) and refits the rest when statistics are given.
    /// <paramref name="alongOutputs"/>: a group is instead one column of groupWidth consecutive rows (the
    /// output-grouped kernel's orientation; a partial last block of rows forms smaller groups, and there is no tail).
    /// </summary>
    public static Result Prune(float[] weight, int rows, int cols, int groupWidth, double sparsity, Criterion criterion, LayerStatistics? stats,
        bool alongOutputs = false)
    {
        int groupsPerRow = alongOutputs ? cols : cols / groupWidth;
        int total = (alongOutputs ? (rows + groupWidth - 1) / groupWidth : rows) * groupsPerRow;
        int remove = (int)Math.Round(sparsity * total);
        var scores = new double[total];
        for (int i = 0; i < total; i++)
        {
            int r = i / groupsPerRow, g = i % groupsPerRow;
            scores[i] = alongOutputs
                ? ColumnScore(weight, r * groupWidth, Math.Min(rows, (r + 1) * groupWidth), g, cols, criterion, stats)
                : Score(weight.AsSpan(r * cols + g * groupWidth, groupWidth), g * groupWidth, cols, criterion, stats);
        }
        // Lowest scores go first; ties break by position so the result is deterministic.
        var order = Enumerable.Range(0, total).OrderBy(i => scores[i]).ThenBy(i => i).ToArray();
        var keep = new bool[rows * cols];
        Array.Fill(keep, true);
        long removed = 0;
        for (int i = 0; i < remove; i++)
        {
            int r = order[i] / groupsPerRow, g = order[i] % groupsPerRow;
            if (alongOutputs)
                for (int row = r * groupWidth; row < Math.Min(rows, (r + 1) * groupWidth); row++, removed++) keep[row * cols + g] = false;
            else
            {
                Array.Fill(keep, false, r * cols + g * groupWidth, groupWidth);
                removed += groupWidth;
            }
        }
        var result = new float[weight.Length];
        if (stats is null)
        {
            for (int i = 0; i < weight.Length; i++) result[i] = keep[i] ? weight[i] : 0f;
        }
        else Refit(weight, keep, rows, cols, stats, result);
        return new Result(result, 1 - (double)removed / ((long)rows * cols), stats is not null);
    }

    /// <summary>
    /// A column of rows [first, end): RMS of its weights, or its data-aware energy, sum over the rows of w_rc^2 H_cc
    /// (what each row's output loses when column c goes).
    /// </summary>
    private static double ColumnScore(float[] weight, int first, int end, int c, int cols, Criterion criterion, LayerStatistics? stats)
    {
        double sum = 0;
        for (int r = first; r < end; r++) sum += (double)weight[r * cols + c] * weight[r * cols + c];
        return criterion == Criterion.DataAware && stats is not null ? sum * stats.H[c * cols + c] : Math.Sqrt(sum / (end - first));
    }

    /// <summary>Least-squares refit of a [rows x cols] matrix restricted to the given columns: returns [rows x keep.Count].</summary>
    public static float[] RefitColumns(float[] weight, int rows, int cols, IReadOnlyList<int> keepColumns, LayerStatistics stats)
    {
        var keep = new bool[rows * cols];
        for (int r = 0; r < rows; r++)
            foreach (var c in keepColumns) keep[r * cols + c] = true;
        var full = new float[weight.Length];
        Refit(weight, keep, rows, cols, stats, full);
        var result = new float[rows * keepColumns.Count];
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < keepColumns.Count; i++) result[r * keepColumns.Count + i] = full[r * cols + keepColumns[i]];
        return result;
    }

    private static double Score(ReadOnlySpan<float> group, int start, int cols, Criterion criterion, LayerStatistics? stats)
    {
        if (criterion == Criterion.DataAware && stats is not null)
        {
            double energy = 0;
            for (int i = 0; i < group.Length; i++)
                for (int j = 0; j < group.Length; j++)
                    energy += group[i] * stats.H[(start + i) * cols + start + j] * group[j];
            return energy;
        }
        double sum = 0;
        foreach (var v in group) sum += (double)v * v;
        return Math.Sqrt(sum / group.Length);
    }

    /// <summary>
    /// Per row: w_S = (H_SS + lambda I)^-1 ((C w)_S + lambda w_S), so the kept weights reproduce the original outputs.
    /// The damping pulls toward the original weights, not toward zero: with nothing removed the weights come back as
    /// they were. Pulled toward zero, every weight of a rarely active input (a border pixel) shrank, which cost an
    /// MLP's first layer 0.3 points of accuracy at 5 % sparsity (docs/performance.md, "Losing less per refused step").
    /// </summary>
    private static void Refit(float[] weight, bool[] keep, int rows, int cols, LayerStatistics stats, float[] result)
    {
        double lambda = stats.Damping;
        Parallel.For(0, rows, r =>
        {
            var kept = new List<int>(cols);
            for (int c = 0; c < cols; c++) if (keep[r * cols + c]) kept.Add(c);
            int s = kept.Count;
            if (s == 0) return;
            var a = new double[s * s];
            var b = new double[s];
            var w = weight.AsSpan(r * cols, cols);
            for (int i = 0; i < s; i++)
            {
                int ci = kept[i];
                var hrow = stats.H.AsSpan(ci * cols, cols);
                for (int j = 0; j < s; j++) a[i * s + j] = hrow[kept[j]];
                a[i * s + i] += lambda;
                var crow = stats.C.AsSpan(ci * cols, cols);
                double dot = 0;
                for (int j = 0; j < cols; j++) dot += crow[j] * w[j];
                b[i] = dot + lambda * w[ci];
            }
            Cholesky.Solve(a, b, s);
            for (int i = 0; i < s; i++) result[r * cols + kept[i]] = (float)b[i];
        });
    }
}

/// <summary>Cholesky factorisation A = L L' of a symmetric positive definite matrix (row-major, n x n), and solves with it.</summary>
public static class Cholesky
{
    /// <summary>Solves A x = b in place: A is overwritten by its factor, b by x.</summary>
    public static void Solve(double[] a, double[] b, int n)
    {
        Factor(a, n);
        SolveFactored(a, b, n);
    }

    /// <summary>Overwrites the lower triangle of <paramref name="a"/> with L.</summary>
    public static void Factor(double[] a, int n)
    {
        for (int j = 0; j < n; j++)
        {
            var rowJ = a.AsSpan(j * n, n);
            double d = rowJ[j] - System.Numerics.Tensors.TensorPrimitives.Dot<double>(rowJ[..j], rowJ[..j]);
            if (d <= 0) d = 1e-12; // numerically semidefinite: the damping makes this rare
            double l = Math.Sqrt(d);
            rowJ[j] = l;
            for (int i = j + 1; i < n; i++)
            {
                var rowI = a.AsSpan(i * n, n);
                rowI[j] = (rowI[j] - System.Numerics.Tensors.TensorPrimitives.Dot<double>(rowI[..j], rowJ[..j])) / l;
            }
        }
    }

    /// <summary>Solves L L' x = b in place, given the factor from <see cref="Factor"/>.</summary>
    public static void SolveFactored(double[] l, double[] b, int n)
    {
        for (int i = 0; i < n; i++)
        {
            var row = l.AsSpan(i * n, n);
            b[i] = (b[i] - System.Numerics.Tensors.TensorPrimitives.Dot<double>(row[..i], b.AsSpan(0, i))) / row[i];
        }
        for (int i = n - 1; i >= 0; i--)
        {
            double sum = b[i];
            for (int k = i + 1; k < n; k++) sum -= l[k * n + i] * b[k];
            b[i] = sum / l[i * n + i];
        }
    }
}
