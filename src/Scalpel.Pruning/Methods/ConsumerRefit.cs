using Scalpel.Onnx;
using Scalpel.Onnx.Layers;

namespace Scalpel.Pruning.Methods;

/// <summary>
/// Least-squares refit of the layer that reads a node-pruned group: its weights on the kept input channels plus
/// a bias correction are fit so its outputs on calibration data match the original layer's (docs/pruning.md,
/// "node pruning refits layer l+1"). Conv consumers are fit on im2col patches, subsampled per image.
/// </summary>
public sealed class ConsumerRefit
{
    /// <summary>Patch positions sampled per calibration image for conv consumers (bounds the cost of H).</summary>
    public const int PositionsPerSample = 64;

    /// <summary>Calibration samples whose rows are built and summed at a time (bounds the memory of patches).</summary>
    private const int ChunkSamples = 128;

    private readonly LayerStatistics _stats;
    private readonly float[] _weight; // [outputs, inputs + 1]: the original weight with a zero intercept column
    private readonly int _outputs, _inputs, _block;

    private ConsumerRefit(LayerStatistics stats, float[] weight, int outputs, int inputs, int block)
    {
        _stats = stats;
        _weight = weight;
        _outputs = outputs;
        _inputs = inputs;
        _block = block;
    }

    /// <summary>Columns per kept channel: kh*kw taps for a conv consumer, the Flatten block for a Gemm.</summary>
    public int Block => _block;

    /// <summary>
    /// The refit of <paramref name="g"/>'s consumer, from its input on the calibration set (<paramref name="tensors"/>);
    /// null for a Gemm that scales by alpha or beta, which the refit weight and bias would have to undo.
    /// </summary>
    public static ConsumerRefit? Create(ChannelGroup g, ModelGraph model, Dictionary<string, float[]> tensors)
    {
        var layer = model.Layers.OfType<WeightedLayer>().First(l => l.Node.Proto == g.Consumer);
        if (layer.Node.Float("alpha", 1f) != 1f || layer.Node.Float("beta", 1f) != 1f) return null;
        // With alpha 1 the layer's weight is its initializer's values as [outputs, inputs]; each channel is Block columns.
        var input = g.Consumer.Input[0];
        int outputs = layer.Rows, inputs = layer.Columns, sampleSize = Shape.Size(model.Shapes[input], 1, model.Shapes[input].Length);
        var stats = Statistics(tensors[input], sampleSize, inputs, x => layer.Features(x, PositionsPerSample));
        return new ConsumerRefit(stats, WithIntercept(layer.Weight, outputs, inputs), outputs, inputs, inputs / g.Channels);
    }

    /// <summary>The refit weights on the kept channels ([outputs, kept * block], row-major) and the bias change per output.</summary>
    public (float[] Weight, float[] BiasDelta) Fit(int[] keptChannels)
    {
        var columns = keptChannels.SelectMany(c => Enumerable.Range(c * _block, _block)).Append(_inputs).ToArray();
        var fit = WeightPruning.RefitColumns(_weight, _outputs, _inputs + 1, columns, _stats);
        int kept = columns.Length - 1;
        var weight = new float[_outputs * kept];
        var bias = new float[_outputs];
        for (int r = 0; r < _outputs; r++)
        {
            fit.AsSpan(r * (kept + 1), kept).CopyTo(weight.AsSpan(r * kept));
            bias[r] = fit[r * (kept + 1) + kept];
        }
        return (weight, bias);
    }

    /// <summary>
    /// Optimal-brain-surgeon cost of removing each input channel of the consumer (with the rest refit):
    /// sum over outputs r of w_rB' [(H^-1)_BB]^-1 w_rB, B = the channel's columns. Lower is safer to remove.
    /// </summary>
    public double[] ChannelCosts(int channels)
    {
        int k = _inputs + 1;
        var factor = (double[])_stats.H.Clone();
        double lambda = _stats.Damping;
        for (int i = 0; i < k; i++) factor[i * k + i] += lambda;
        Cholesky.Factor(factor, k);
        var inverse = new double[k * k];
        var e = new double[k];
        for (int col = 0; col < k; col++)
        {
            Array.Clear(e);
            e[col] = 1;
            Cholesky.SolveFactored(factor, e, k);
            for (int row = 0; row < k; row++) inverse[row * k + col] = e[row];
        }
        var costs = new double[channels];
        int b = _block;
        var block = new double[b * b];
        var w = new double[b];
        var x = new double[b];
        for (int j = 0; j < channels; j++)
        {
            int start = j * b;
            for (int i = 0; i < b; i++)
                for (int m = 0; m < b; m++) block[i * b + m] = inverse[(start + i) * k + start + m];
            Cholesky.Factor(block, b);
            for (int r = 0; r < _outputs; r++)
            {
                for (int i = 0; i < b; i++) w[i] = x[i] = _weight[r * k + start + i];
                Cholesky.SolveFactored(block, x, b);
                for (int i = 0; i < b; i++) costs[j] += w[i] * x[i];
            }
        }
        return costs;
    }

    private static float[] WithIntercept(float[] matrix, int rows, int cols)
    {
        var result = new float[rows * (cols + 1)];
        for (int r = 0; r < rows; r++) matrix.AsSpan(r * cols, cols).CopyTo(result.AsSpan(r * (cols + 1)));
        return result;
    }

    /// <summary>X'X over rows of <paramref name="cols"/> values, each extended with a constant 1 (the intercept).</summary>
    /// <summary>
    /// H of the rows with an intercept column of ones, <see cref="ChunkSamples"/> calibration samples at a time:
    /// the rows (im2col patches) and their augmented copy never exist for all samples at once.
    /// </summary>
    private static LayerStatistics Statistics(float[] activations, int sampleSize, int cols, Func<float[], float[]> rowsOf)
    {
        var sum = new LayerStatistics.Accumulator(cols + 1, cross: false);
        int samples = activations.Length / sampleSize;
        for (int s = 0; s < samples; s += ChunkSamples)
        {
            var rows = rowsOf(activations.AsSpan(s * sampleSize, Math.Min(ChunkSamples, samples - s) * sampleSize).ToArray());
            int n = rows.Length / cols;
            var augmented = new float[n * (cols + 1)];
            for (int r = 0; r < n; r++)
            {
                rows.AsSpan(r * cols, cols).CopyTo(augmented.AsSpan(r * (cols + 1)));
                augmented[r * (cols + 1) + cols] = 1f;
            }
            sum.Add(augmented, augmented);
        }
        return sum.Result();
    }
}
