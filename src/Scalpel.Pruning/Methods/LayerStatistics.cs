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
        int rows = current.Length / k;
        // Without a cross term (the same inputs on both sides) C equals H: accumulate it once.
        bool cross = !ReferenceEquals(current, original);
        // Two fixed partitions, whatever the core count, so the sums come out the same on every machine.
        var partials = new (double[] H, double[]? C)[2];
        Parallel.For(0, 2, part =>
        {
            var ph = new double[k * k];
            var pc = cross ? new double[k * k] : null;
            var x = new double[k];
            var xo = new double[k];
            for (int r = part; r < rows; r += 2)
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
            partials[part] = (ph, pc);
        });
        var h = new double[k * k];
        for (int i = 0; i < h.Length; i++) h[i] = partials[0].H[i] + partials[1].H[i];
        var c = h;
        if (cross)
        {
            c = new double[k * k];
            for (int i = 0; i < c.Length; i++) c[i] = partials[0].C![i] + partials[1].C![i];
        }
        return new LayerStatistics { K = k, H = h, C = c, Samples = rows };
    }
}
