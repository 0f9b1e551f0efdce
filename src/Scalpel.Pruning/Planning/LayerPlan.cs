using Scalpel.Onnx.Layers;
using Scalpel.Pruning.Methods;

namespace Scalpel.Pruning.Planning;

/// <summary>
/// How one weighted layer is weight-pruned: technique, format, the sparsity steps the search may take, and where the
/// search stands (<see cref="Level"/>). The layer is the baseline's: pruned weights come from <see cref="Pruned"/>.
/// </summary>
internal sealed class LayerPlan
{
    public required WeightedLayer Layer { get; init; }
    public int Rows => Layer.Rows;
    public int Cols => Layer.Columns;
    public string Input => Layer.Inputs[0];
    public required string Technique { get; init; }
    public required WeightFormat Format { get; init; }
    public required int GroupWidth { get; init; }
    public required double Crossover { get; init; }
    public required double[] Candidates { get; init; }
    /// <summary>A sparsity the user fixed: applied even when the accuracy guard would refuse it.</summary>
    public bool Fixed { get; init; }
    public bool AlongOutputs => Format == WeightFormat.OutputGrouped;
    /// <summary>Set when the sparse kernel measured slower than the dense one for this layer here: it runs dense.</summary>
    public string? SlowerThanDense { get; set; }
    public string? Note { get; init; }
    public LayerStatistics? Stats { get; set; }
    /// <summary>Index into <see cref="Candidates"/>; -1 = unpruned.</summary>
    public int Level { get; set; } = -1;
    private Dictionary<int, WeightPruning.Result> Cache { get; } = [];

    /// <summary>The rows the layer's weights multiply: the input itself, or im2col patches for a conv.</summary>
    public float[] Features(float[] input) => Layer.Features(input, ConsumerRefit.PositionsPerSample);

    /// <summary>
    /// The statistics of the layer's features on <paramref name="samples"/> inputs (against the original model's
    /// inputs for the cross term, or <paramref name="current"/> itself), 128 samples of features at a time: a
    /// conv's im2col patches never exist for the whole calibration set at once.
    /// </summary>
    public LayerStatistics Statistics(float[] current, float[] original, int samples)
    {
        bool cross = !ReferenceEquals(current, original);
        var sum = new LayerStatistics.Accumulator(Cols, cross);
        int size = current.Length / samples;
        for (int s = 0; s < samples; s += 128)
        {
            int n = Math.Min(128, samples - s);
            var x = Features(current.AsSpan(s * size, n * size).ToArray());
            sum.Add(x, cross ? Features(original.AsSpan(s * size, n * size).ToArray()) : x);
        }
        return sum.Result();
    }

    /// <summary>The layer's weights pruned to candidate <paramref name="level"/> and refit, computed once per level.</summary>
    public WeightPruning.Result Pruned(int level, Criterion criterion)
    {
        if (!Cache.TryGetValue(level, out var r))
            Cache[level] = r = WeightPruning.Prune(Layer.Weight, Rows, Cols, GroupWidth, Candidates[level], criterion, Stats, AlongOutputs);
        return r;
    }

    /// <summary><paramref name="weight"/> (pruned to this plan's pattern) in this plan's format.</summary>
    public LayerWeights Weights(float[] weight, float[]? bias) => new(weight, bias, Format, GroupWidth);

    /// <summary>The layer at candidate <paramref name="level"/>, with the baseline's bias.</summary>
    public LayerWeights At(int level, Criterion criterion) => Weights(Pruned(level, criterion).Weight, Layer.Bias);

    public double Sparsity => Level < 0 ? 0 : Candidates[Level];

    /// <summary>The level a retraining step raises this layer to: the next of <see cref="Planner.RetrainLevels"/> above its sparsity, or its last.</summary>
    public int RetrainLevel()
    {
        double next = Planner.RetrainLevels.FirstOrDefault(s => s > Sparsity, 1);
        int level = Array.FindIndex(Candidates, Level + 1, s => s >= next);
        return level < 0 ? Candidates.Length - 1 : level;
    }

    /// <summary>Retraining steps left to this layer's last level.</summary>
    public int RetrainStepsLeft() => Candidates.Length == 0 ? 0 : Planner.RetrainLevels.Count(s => s > Sparsity && s <= Candidates[^1]);

    /// <summary>Time relative to the dense kernel, from the crossover (sparse time falls linearly with kept weights).</summary>
    public double RelativeTime(int level) => level < 0 || Format == WeightFormat.Dense ? 1 : (1 - Candidates[level]) / Math.Max(1e-6, 1 - Crossover);
}
