using Scalpel.CodeGen;
using Scalpel.Pruning.Methods;
using Xunit;

namespace Scalpel.Tests;

/// <summary>SIMD-aware weight pruning along outputs: the groups the output-grouped kernel stores.</summary>
public sealed class WeightPruningTests
{
    [Theory]
    [InlineData(Criterion.Magnitude, false)]
    [InlineData(Criterion.DataAware, true)]
    public void AlongOutputsRemovesWholeColumnsOfBlocksOfRows(Criterion criterion, bool refit)
    {
        const int rows = 10, cols = 6, g = 4; // blocks of 4, 4 and 2 rows: 18 groups
        var rng = new Random(3);
        var weight = Enumerable.Range(0, rows * cols).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        LayerStatistics? stats = null;
        if (refit)
        {
            var x = Enumerable.Range(0, 64 * cols).Select(_ => (float)rng.NextDouble()).ToArray();
            stats = LayerStatistics.Compute(x, x, cols);
        }
        var result = WeightPruning.Prune(weight, rows, cols, g, 0.5, criterion, stats, alongOutputs: true);

        int removedGroups = 0, removedWeights = 0;
        for (int b = 0; b < rows; b += g)
            for (int c = 0; c < cols; c++)
            {
                var column = Enumerable.Range(b, Math.Min(g, rows - b)).Select(r => result.Weight[r * cols + c]).ToArray();
                Assert.True(column.All(v => v == 0f) || column.All(v => v != 0f), $"block at row {b}, column {c} is partly pruned");
                if (column[0] == 0f) (removedGroups, removedWeights) = (removedGroups + 1, removedWeights + column.Length);
            }
        Assert.Equal(9, removedGroups);
        Assert.Equal(1 - removedWeights / 60.0, result.KeptFraction, 9);
        Assert.Equal(refit, result.Refit);
        // The stored format holds exactly the kept groups, one index each.
        Assert.Equal(18 - 9, SparseMatrix.OutputGrouped(result.Weight, rows, cols, g).Entries);
    }

    [Fact]
    public void MagnitudeAlongOutputsRemovesTheSmallestColumnsFirst()
    {
        // Two blocks of 2 rows, 3 columns; column 1 of the first block is the smallest group.
        float[] weight = [1, 0.01f, 1, 1, 0.02f, 1, 2, 2, 2, 2, 2, 2];
        var result = WeightPruning.Prune(weight, 4, 3, 2, 1 / 6.0, Criterion.Magnitude, null, alongOutputs: true);
        Assert.Equal([1, 0, 1, 1, 0, 1, 2, 2, 2, 2, 2, 2], result.Weight);
    }

    [Fact]
    public void RefitWithNothingRemovedKeepsTheWeights()
    {
        // Input 0 is almost never active (a border pixel): its H entry is far below the damping term, so a ridge
        // pulling toward zero left about 1 % of its weights. The refit pulls toward the original weights instead.
        const int rows = 4, cols = 5, samples = 256;
        var rng = new Random(5);
        var weight = Enumerable.Range(0, rows * cols).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var x = new float[samples * cols];
        for (int s = 0; s < samples; s++)
            for (int c = 0; c < cols; c++) x[s * cols + c] = (float)rng.NextDouble() * (c == 0 ? 0.01f : 1f);
        var result = WeightPruning.Prune(weight, rows, cols, 1, 0, Criterion.DataAware, LayerStatistics.Compute(x, x, cols));
        Assert.True(result.Refit);
        // Solved in double from well-conditioned systems: equal to float rounding, far tighter than the shrinkage.
        for (int i = 0; i < weight.Length; i++) Assert.Equal(weight[i], result.Weight[i], 1e-5);
    }

    [Fact]
    public void RefitMovesARemovedInputsWeightToAnIdenticalInput()
    {
        // Inputs 0 and 1 always carry the same value: removing the weaker one, the refit hands its weight to the other,
        // so the layer's outputs stay what they were (up to the small damping).
        const int rows = 2, cols = 3, samples = 256;
        var rng = new Random(6);
        var x = new float[samples * cols];
        for (int s = 0; s < samples; s++)
        {
            x[s * cols] = x[s * cols + 1] = (float)rng.NextDouble();
            x[s * cols + 2] = (float)rng.NextDouble();
        }
        float[] weight = [1f, 0.1f, 0.5f, -1f, -0.1f, 0.25f];
        var result = WeightPruning.Prune(weight, rows, cols, 1, 1 / 3.0, Criterion.DataAware, LayerStatistics.Compute(x, x, cols));
        Assert.Equal([0f, 0f], new[] { result.Weight[1], result.Weight[4] });
        // The damping (1 % of H's mean diagonal) pulls toward the original 1 by about 0.001; toward zero it cost 0.011.
        Assert.Equal(1.1f, result.Weight[0], 0.005f);
        Assert.Equal(-1.1f, result.Weight[3], 0.005f);
    }
}
