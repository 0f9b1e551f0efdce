namespace Scalpel.Pruning.Methods;

/// <summary>
/// Second moments of one layer's inputs over the calibration set: H = X'X of the inputs the (partly pruned)
/// model now feeds the layer, and C = X'X_orig against the original model's inputs, so a refit can make the
/// layer reproduce its original outputs (docs/pruning.md, "What it does").
/// </summary>
public sealed class LayerStatistics
{
    public required int K { get; init; }
    public required double[] H { get; init; }
    public required double[] C { get; init; }
    public required int Samples { get; init; }

    /// <summary>Ridge term for solves with H: <see cref="WeightPruning.Damping"/> times H's mean diagonal.</summary>
    public double Damping
    {
        get
        {
            double meanDiag = 0;
            for (int i = 0; i < K; i++) meanDiag += H[i * K + i];
            return WeightPruning.Damping * Math.Max(meanDiag / K, 1e-12);
        }
    }

    /// <summary>Rows are samples (or positions), each of K values.</summary>
    public static LayerStatistics Compute(float[] current, float[] original, int k)
    {
        // Without a cross term (the same inputs on both sides) C equals H: accumulate it once.
        var sum = new Accumulator(k, cross: !ReferenceEquals(current, original));
        sum.Add(current, original);
        return sum.Result();
    }

    /// <summary>
    /// H (and C) summed over rows that arrive in chunks, so no caller has to hold every row at once (the im2col
    /// patches of thousands of images run to hundreds of MB). Each row goes to the same partition, in the same
    /// order, as in one call with all rows: the sums are the same bit for bit.
    /// </summary>
    public sealed class Accumulator(int k, bool cross)
    {
        private readonly (double[] H, double[]? C)[] _partials = [(new double[k * k], cross ? new double[k * k] : null), (new double[k * k], cross ? new double[k * k] : null)];
        private long _rows;

        /// <summary>Adds rows; <paramref name="original"/> is <paramref name="current"/> itself without a cross term.</summary>
        public void Add(float[] current, float[] original)
        {
            int rows = current.Length / k;
            int first = (int)(_rows % 2);
            // Two fixed partitions by row parity, whatever the core count, so the sums come out the same on every machine.
            Parallel.For(0, 2, part =>
            {
                var (ph, pc) = _partials[part];
                var x = new double[k];
                var xo = new double[k];
                for (int r = (part - first + 2) % 2; r < rows; r += 2)
                {
                    for (int i = 0; i < k; i++) { x[i] = current[r * k + i]; xo[i] = original[r * k + i]; }
                    for (int i = 0; i < k; i++)
                    {
                        double xi = x[i];
                        if (xi == 0) continue; // post-Relu inputs are mostly zeros
                        var hrow = ph.AsSpan(i * k, k);
                        for (int j = 0; j < k; j++) hrow[j] += xi * x[j];
                        if (pc is null) continue;
                        var crow = pc.AsSpan(i * k, k);
                        for (int j = 0; j < k; j++) crow[j] += xi * xo[j];
                    }
                }
            });
            _rows += rows;
        }

        public LayerStatistics Result()
        {
            var h = new double[k * k];
            for (int i = 0; i < h.Length; i++) h[i] = _partials[0].H[i] + _partials[1].H[i];
            var c = h;
            if (cross)
            {
                c = new double[k * k];
                for (int i = 0; i < c.Length; i++) c[i] = _partials[0].C![i] + _partials[1].C![i];
            }
            return new LayerStatistics { K = k, H = h, C = c, Samples = (int)_rows };
        }
    }
}
