using Scalpel.CodeGen;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;
using Scalpel.Pruning.Methods;
using Scalpel.Pruning.Targets;

namespace Scalpel.Pruning.Planning;

/// <summary>
/// Chooses per layer how it is pruned, from the target's parallelism and measured crossovers and the user's
/// overrides: node pruning for conv channels (moderate and high parallelism) and FC neurons (high), SIMD-aware
/// weight pruning for FC layers (and conv layers on low parallelism), the CSR baseline for the traditional method.
/// </summary>
internal static class Planner
{
    /// <summary>
    /// Sparsity levels the weight search steps through, from 5 %: a step is scored by one validation pass, and the
    /// guard's bound passes small steps that change few predictions where it refuses large ones.
    /// </summary>
    public static readonly double[] Levels = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.92, 0.95, 0.97];

    /// <summary>The sparsities retraining's weight steps raise a layer to, each step costing epochs of training: a subset of <see cref="Levels"/>.</summary>
    public static readonly double[] RetrainLevels = [0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.92, 0.95, 0.97];

    /// <summary>Fractions of a group's channels retraining's node steps remove; the search removes one channel at a time up to the last.</summary>
    public static readonly double[] NodeLevels = [0.125, 0.25, 0.375, 0.5, 0.625, 0.75];

    /// <summary>Sparsity used without any data to check accuracy against: conservative.</summary>
    public const double DataFreeSparsity = 0.5;

    public static LayerOverride? Override(PruneOptions o, string name, LayerKind kind) =>
        o.Overrides.GetValueOrDefault(name) ?? o.Overrides.GetValueOrDefault(kind.Label());

    /// <summary>The channel groups to node-prune: those the target's parallelism calls for (conv channels on moderate and high, FC neurons on high), after overrides.</summary>
    public static List<ChannelGroup> NodeGroups(ModelProto proto, ModelGraph model, PruneOptions o) => NodePruning.Find(proto, model).Where(g =>
    {
        var ov = Override(o, g.ProducerName, g.ProducerKind);
        bool byParallelism = g.ProducerKind == LayerKind.Conv ? o.Target.Parallelism != Parallelism.Low : o.Target.Parallelism == Parallelism.High;
        return ov?.KeepDense != true && (ov?.Technique == Technique.Node || (ov?.Technique is null && byParallelism));
    }).ToList();

    /// <summary>A plan for each weighted layer that weight pruning may touch (node-pruned conv layers are left out).</summary>
    public static List<LayerPlan> WeightPlans(ModelGraph model, ModelProto proto, PruneOptions o)
    {
        var plans = new List<LayerPlan>();
        foreach (var layer in model.Layers.OfType<WeightedLayer>().Where(l => !l.Grouped))
        {
            var ov = Override(o, layer.Name, layer.Family);
            var cross = o.Target.Crossover.For(layer.Family);
            string? note = null;
            WeightFormat format;
            string technique;
            if (o.Method == Method.Dense || ov?.KeepDense == true)
                (format, technique, note) = (WeightFormat.Dense, "none", o.Method == Method.Dense ? null : "kept dense by override");
            else if (ov?.Technique == Technique.Node)
                continue; // node-pruned by override
            else if (ov?.Technique is null && layer.Family == LayerKind.Conv && o.Method == Method.Scalpel && o.Target.Parallelism != Parallelism.Low)
                continue; // conv layers on moderate and high parallelism are node-pruned (or left alone) instead
            else if (!OnnxWriteback.CanRewrite(proto, layer) || !layer.SparseFits)
                (format, technique, note) = (WeightFormat.Dense, "none", "weight is not an initializer of this layer alone (shared with another node)");
            else if (ov?.Technique == Technique.Csr || (ov?.Technique is null && o.Method == Method.Traditional))
                (format, technique) = (WeightFormat.Csr, "traditional weight pruning");
            else if (ov?.Technique == Technique.Weight)
                (format, technique) = SimdAware(layer, cross, o.Target);
            else if (o.Target.Parallelism == Parallelism.High)
                (format, technique, note) = (WeightFormat.Dense, "none", "high parallelism: node pruning only");
            else
                (format, technique) = SimdAware(layer, cross, o.Target);

            double crossover = format switch { WeightFormat.Csr => cross.Csr, WeightFormat.OutputGrouped => cross.OutputGrouped, _ => cross.GroupedCsr };
            int group = format is WeightFormat.GroupedCsr or WeightFormat.OutputGrouped ? o.Target.GroupWidth : 1;
            // A level below the crossover would run slower, one that stores more bytes than dense would grow the layer.
            bool Pays(double s) => s >= crossover && SparseMatrix.EstimatedBytes(layer.Rows, layer.Columns, group, format == WeightFormat.OutputGrouped, s) < 4.0 * layer.Rows * layer.Columns;
            double[] candidates = format == WeightFormat.Dense ? []
                : ov?.Sparsity is { } fixedSparsity ? [fixedSparsity]
                : format == WeightFormat.Csr ? Levels // the baseline ignores the crossover, as traditional pruning does
                : Levels.Where(Pays).ToArray();
            if (format != WeightFormat.Dense && candidates.Length == 0)
                (format, group, note) = (WeightFormat.Dense, 1, $"no sparsity level reaches the crossover {crossover:P0} and stores fewer bytes than dense");
            plans.Add(new LayerPlan
            {
                Layer = layer, Technique = technique, Format = format, GroupWidth = group, Crossover = crossover, Candidates = candidates, Note = note,
                Fixed = format != WeightFormat.Dense && ov?.Sparsity is not null,
            });
        }
        return plans;
    }

    /// <summary>
    /// SIMD-aware weight pruning's format: for a layer with an output-grouped kernel (FC), the target's group orientation
    /// with the lowest crossover in <paramref name="cross"/> (output-grouped on a tie: no horizontal sums); others (conv)
    /// group along their inputs, C * KH * KW.
    /// </summary>
    private static (WeightFormat, string) SimdAware(WeightedLayer layer, Crossover cross, TargetProfile t)
    {
        var ways = t.GroupOrientations;
        bool outputs = layer.OutputGroupable && ways.Contains(GroupOrientation.Outputs)
            && (!ways.Contains(GroupOrientation.Inputs) || cross.OutputGrouped <= cross.GroupedCsr);
        return outputs ? (WeightFormat.OutputGrouped, "SIMD-aware weight pruning along outputs") : (WeightFormat.GroupedCsr, "SIMD-aware weight pruning");
    }
}
