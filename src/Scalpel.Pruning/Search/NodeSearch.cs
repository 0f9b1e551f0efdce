using System.Globalization;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;
using Scalpel.Pruning.Calibration;
using Scalpel.Pruning.Data;
using Scalpel.Pruning.Methods;
using Scalpel.Pruning.Planning;

namespace Scalpel.Pruning.Search;

/// <summary>The node-pruned ONNX model and, per pruned group's producer, the channels kept of how many.</summary>
internal sealed record NodeResult(ModelProto Model, Dictionary<string, (int Kept, int Channels)> Kept);

/// <summary>
/// Node pruning of the channel groups the target's parallelism calls for (conv channels on moderate and high
/// parallelism, FC neurons on high): channels ranked by calibration importance, the fraction removed per group
/// chosen greedily by MACs saved within the budget; consumers are refit by least squares.
/// </summary>
internal static class NodeSearch
{
    public static NodeResult Run(OnnxModel original, ModelGraph model, PruneOptions o, Dataset? calibration, Budget? budget,
        List<string> log, IProgress<string> say)
    {
        var none = new NodeResult(original.Proto, []);
        if (o.Method != Method.Scalpel || budget is null) return none;
        var groups = Planner.NodeGroups(original.Proto, model, o);
        if (groups.Count == 0) return none;
        say.Report($"node pruning: {groups.Count} channel groups ({string.Join(", ", groups.Select(g => $"{g.ProducerName} x{g.Channels}"))})");

        var graph = new OnnxGraph(original);
        Dictionary<string, float[]>? tensors = null;
        if (calibration is not null)
        {
            say.Report($"calibrating node importance and consumer refits on {calibration.Count} samples");
            using var runner = new OrtRunner(original.Proto, groups.Select(g => g.Activation).Concat(groups.Where(g => g.ConsumerIsGemm).Select(g => g.Consumer.Input[0])));
            tensors = runner.Run(calibration);
        }
        var means = tensors is null ? [] : groups.ToDictionary(g => g, g => NodePruning.ChannelMeans(tensors[g.Activation], g.Channels, g.Spatial));
        var refitters = tensors is null ? [] : groups.ToDictionary(g => g, g => ConsumerRefit.Create(g, model, tensors));
        // Channels ranked most important first: by their OBS removal cost when the consumer is refit, else by energy.
        var order = groups.ToDictionary(g => g, g =>
        {
            var costs = refitters.GetValueOrDefault(g)?.ChannelCosts(g.Channels) ?? NodePruning.Importance(g, graph, tensors?[g.Activation]);
            return Enumerable.Range(0, g.Channels).OrderByDescending(j => costs[j]).ThenBy(j => j).ToArray();
        });
        tensors = null; // the search's closures capture this variable: drop the activations (hundreds of MB) before the search
        // Channels removed at each level: one more at a time up to the largest of Planner.NodeLevels, or the fraction
        // asked; one channel always stays.
        var levels = groups.ToDictionary(g => g, g =>
        {
            int Removed(double fraction) => Math.Min((int)Math.Round(fraction * g.Channels), g.Channels - 1);
            return Planner.Override(o, g.ProducerName, g.ProducerKind)?.Sparsity is { } s ? new[] { Removed(s) }.Where(n => n > 0).ToArray()
                : Enumerable.Range(1, Math.Max(0, Removed(Planner.NodeLevels[^1]))).ToArray();
        });
        var state = groups.ToDictionary(g => g, _ => -1);
        var refits = new Dictionary<(ChannelGroup, int), (float[], float[])>();

        int[] Keep(ChannelGroup g, int level) => order[g].Take(g.Channels - (level < 0 ? 0 : levels[g][level])).Order().ToArray();
        int Next(ChannelGroup g, int stride) => Math.Min(state[g] + stride, levels[g].Length - 1);

        ModelProto Build(Dictionary<ChannelGroup, int> levelOf)
        {
            var proto = original.Proto.Clone();
            foreach (var g in groups.Where(g => levelOf[g] >= 0))
            {
                var keep = Keep(g, levelOf[g]);
                (float[], float[])? refit = null;
                if (refitters.GetValueOrDefault(g) is { } refitter)
                {
                    if (!refits.TryGetValue((g, levelOf[g]), out var fit)) refits[(g, levelOf[g])] = fit = refitter.Fit(keep);
                    refit = fit;
                }
                NodePruning.Apply(proto, g, keep, refit, means.GetValueOrDefault(g));
            }
            return proto;
        }

        GreedySearch.Run(
            () => groups.Where(g => state[g] + 1 < levels[g].Length),
            g => (int)Math.Round(Planner.NodeLevels[0] * g.Channels), // the first steps remove an eighth of the channels
            (g, stride) =>
            {
                int next = Next(g, stride);
                var result = budget.Paired(Build(new Dictionary<ChannelGroup, int>(state) { [g] = next }));
                int removed = levels[g][next] - (state[g] < 0 ? 0 : levels[g][state[g]]);
                return new(result, (double)removed * g.MacsPerChannel,
                    string.Create(CultureInfo.InvariantCulture, $"{g.ProducerName}: remove {levels[g][next]} of {g.Channels} channels"));
            },
            (g, stride, score) =>
            {
                state[g] = Next(g, stride);
                return string.Create(CultureInfo.InvariantCulture, $"{g.ProducerName}: node pruning keeps {Keep(g, state[g]).Length} of {g.Channels}, validation {score:P2}");
            },
            () => groups.Select(g => levels[g].Length - 1 - state[g]), budget, log, say, o.Cancellation);

        var kept = groups.Where(g => state[g] >= 0).ToDictionary(g => g.ProducerName, g => (Keep(g, state[g]).Length, g.Channels));
        return kept.Count == 0 ? none : new NodeResult(Build(state), kept);
    }
}
