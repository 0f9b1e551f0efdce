using System.Globalization;
using Scalpel.Onnx.Layers;
using Scalpel.Pruning.Planning;

namespace Scalpel.Pruning.Profiling;

/// <summary>
/// Times each chosen layer's sparse kernel against the dense kernel of the same (pruned) layer on this machine and
/// runs the dense kernel where the sparse one measured slower: the crossover is a model, the measurement decides.
/// </summary>
internal static class FasterKernels
{
    public static PruneState Keep(PruneState state, List<LayerPlan> chosen, PruneOptions o, IProgress<string> say)
    {
        say.Report("timing each pruned layer's sparse kernel against the dense kernel on this machine");
        var model = state.Model();
        // A shared machine's bursts can make one measurement lie either way: each layer takes the majority of up to three.
        var votes = chosen.ToDictionary(p => p.Layer.Name, _ => (Slower: 0, Faster: 0));
        var last = new Dictionary<string, (double Pruned, double Dense)>();
        while (votes.Values.Any(v => v.Slower < 2 && v.Faster < 2))
        {
            var times = LayerTimer.Measure(model, model, o.Target.CodeTarget, o.Cancellation);
            foreach (var name in votes.Keys.Where(n => votes[n].Slower < 2 && votes[n].Faster < 2).ToList())
            {
                var t = last[name] = times[name];
                votes[name] = t.Pruned > t.Dense ? (votes[name].Slower + 1, votes[name].Faster) : (votes[name].Slower, votes[name].Faster + 1);
            }
        }
        foreach (var p in chosen)
        {
            if (votes[p.Layer.Name].Slower < 2) continue;
            var t = last[p.Layer.Name];
            p.SlowerThanDense = string.Create(CultureInfo.InvariantCulture,
                $"its sparse kernel measured slower than the dense one here ({t.Pruned:0.00} µs vs {t.Dense:0.00} µs): runs dense, on the pruned weights");
            say.Report($"  {p.Layer.Name}: {p.SlowerThanDense}");
            state = state.With(p.Layer.Name, state.WeightsOf(p.Layer) with { Format = WeightFormat.Dense, GroupWidth = 1 });
        }
        return state;
    }
}
