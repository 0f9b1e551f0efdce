using Scalpel.Pruning.Calibration;
using Scalpel.Pruning.Data;
using Scalpel.Pruning.Search;
using Xunit;

namespace Scalpel.Tests;

/// <summary>
/// The greedy loop both searches share, on made-up layers: a layer at level L changes a fixed number of predictions
/// (as many lost as gained), and the 95 % guard of a 0.5-point budget over 2000 samples decides. Lower bounds
/// (Newcombe's method 10, by hand): 10 changed each way -0.38 points, 40 each way -0.74; so levels up to 3 hold
/// and 4 or more do not, each 0.1 points or more from the budget.
/// </summary>
public sealed class GreedySearchTests
{
    private static readonly int[] Changed = [0, 3, 6, 10, 40, 60, 80, 100, 120];

    private static readonly Budget Guard = new(new Dataset { Inputs = new float[2000], Count = 2000, SampleSize = 1, Source = "test" }, new int[2000], 0.895, new int[2000]);

    private sealed class Layer(string name, int firstStride)
    {
        public string Name { get; } = name;
        public int FirstStride { get; } = firstStride;
        public int Level { get; set; }
        public int Next(int stride) => Math.Min(Level + stride, Changed.Length - 1);
    }

    /// <summary>Runs the search over <paramref name="layers"/>; returns the steps scored, as layer and level.</summary>
    private static List<string> Search(Layer[] layers, List<string> log)
    {
        var scored = new List<string>();
        GreedySearch.Run(
            () => layers.Where(l => l.Level < Changed.Length - 1),
            l => l.FirstStride,
            (l, stride) =>
            {
                int next = l.Next(stride), n = Changed[next];
                scored.Add($"{l.Name}{next}");
                return new(new PairedAccuracy(1800 - n, n, n, 200 - n), next - l.Level, $"{l.Name} at {next}");
            },
            (l, stride, _) =>
            {
                l.Level = l.Next(stride);
                return $"{l.Name} {l.Level}";
            },
            () => layers.Select(l => Changed.Length - 1 - l.Level), Guard, log, new Progress<string>(), CancellationToken.None);
        return scored;
    }

    [Fact]
    public void ARefusedStepIsTriedAgainSmaller()
    {
        // Steps of 4 levels: the first (to 4) is refused. Stopping there kept nothing; halving the step reaches 3.
        var layer = new Layer("a", 4);
        var log = new List<string>();
        var scored = Search([layer], log);
        Assert.Equal(3, layer.Level);
        Assert.Equal(["a 2", "a 3"], log);
        Assert.Equal(["a4", "a2", "a4", "a3", "a4"], scored);
    }

    [Fact]
    public void WhileNothingIsAcceptedNoStepIsScoredTwice()
    {
        // b's single-level step is refused for good; a's steps shrink. In a round that accepts nothing the state is
        // unchanged, so b's answer stands and only a's smaller step is scored; after an accepted step b is scored again.
        var a = new Layer("a", 4);
        var b = new Layer("b", 1) { Level = 3 };
        var scored = Search([a, b], []);
        Assert.Equal((3, 3), (a.Level, b.Level));
        Assert.Equal(["a4", "b4", "a2", "a4", "b4", "a3", "a4", "b4"], scored);
    }
}
