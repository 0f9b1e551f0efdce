using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;

namespace Scalpel.Pruning.Methods;

/// <summary>
/// The output channels (or neurons) of one Conv/Gemm, traced through the per-channel ops that follow it
/// (BatchNorm, activations, pools) to the one Conv or Gemm that reads them, possibly through a Flatten
/// (blocks of H*W columns). Removing channel j removes the producer's filter j, its BatchNorm entries and
/// bias, and the consumer's input channel (or column block) j: the network stays dense and valid.
/// Channels that reach a residual Add, a Concat, a graph output or two readers are left alone.
/// </summary>
public sealed class ChannelGroup
{
    public required NodeProto Producer { get; init; }
    public required string ProducerName { get; init; }
    public required int Channels { get; init; }
    /// <summary>Initializer name and the axis holding the producer's output channels.</summary>
    public required List<(string Name, int Axis)> PerChannel { get; init; }
    public required NodeProto Consumer { get; init; }
    /// <summary>Consumer weight initializer and the axis holding its input channels (blocks of Block along it).</summary>
    public required (string Name, int Axis) ConsumerWeight { get; init; }
    public required int Block { get; init; }
    /// <summary>The tensor the consumer reads (before any Flatten): its channels are what gets pruned.</summary>
    public required string Activation { get; init; }
    public required bool ConsumerIsGemm { get; init; }
    /// <summary>Index of the consumer in the graph's node list (the same in every clone of the model).</summary>
    public required int ConsumerIndex { get; init; }
    /// <summary>MACs per sample that one channel costs, in the producer and the consumer together.</summary>
    public required long MacsPerChannel { get; init; }
    /// <summary>Positions per channel in the activation (H * W for conv outputs, 1 for Gemm outputs).</summary>
    public required int Spatial { get; init; }
    public LayerKind ProducerKind => Producer.OpType == "Conv" ? LayerKind.Conv : LayerKind.Fc;
}

public static class NodePruning
{
    private static readonly HashSet<string> PassThrough =
        ["Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Dropout", "Identity"];

    /// <summary>Every prunable channel group of the model, in graph order.</summary>
    public static List<ChannelGroup> Find(ModelProto model, ModelGraph analyzed)
    {
        var graph = model.Graph;
        var inits = graph.Initializer.ToDictionary(i => i.Name, StringComparer.Ordinal);
        var readers = new Dictionary<string, List<NodeProto>>(StringComparer.Ordinal);
        foreach (var n in graph.Node)
            foreach (var i in n.Input) (readers.TryGetValue(i, out var l) ? l : readers[i] = []).Add(n);
        var outputs = graph.Output.Select(o => o.Name).ToHashSet();
        bool SingleUse(string name) => inits.ContainsKey(name) && readers.GetValueOrDefault(name)?.Count == 1;
        long Macs(NodeProto node) => analyzed.Layers.FirstOrDefault(l => l.Node.Proto == node)?.Macs ?? 0;

        var groups = new List<ChannelGroup>();
        foreach (var producer in graph.Node)
        {
            var perChannel = new List<(string, int)>();
            int channels;
            if (producer.OpType == "Conv" && producer.Input.Count >= 2 && SingleUse(producer.Input[1]) && Attr(producer, "group", 1) == 1)
            {
                channels = (int)inits[producer.Input[1]].Dims[0];
                perChannel.Add((producer.Input[1], 0));
                if (producer.Input.Count > 2 && producer.Input[2].Length > 0)
                {
                    if (!SingleUse(producer.Input[2])) continue;
                    perChannel.Add((producer.Input[2], 0));
                }
            }
            else if (producer.OpType == "Gemm" && SingleUse(producer.Input[1]) && Attr(producer, "transA", 0) == 0)
            {
                bool transB = Attr(producer, "transB", 0) != 0;
                var b = inits[producer.Input[1]];
                channels = (int)(transB ? b.Dims[0] : b.Dims[1]);
                perChannel.Add((producer.Input[1], transB ? 0 : 1));
                if (producer.Input.Count > 2 && producer.Input[2].Length > 0)
                {
                    if (!SingleUse(producer.Input[2]) || inits[producer.Input[2]].Dims.Count != 1) continue;
                    perChannel.Add((producer.Input[2], 0));
                }
            }
            else continue;

            // Follow the channels to the one layer that reads them.
            var current = producer.Output[0];
            NodeProto? consumer = null;
            int block = 1;
            string activation = current;
            while (true)
            {
                if (outputs.Contains(current) || readers.GetValueOrDefault(current) is not { Count: 1 } next) break;
                var node = next[0];
                if (node.OpType == "BatchNormalization" && node.Input[0] == current && node.Input.Skip(1).Take(4).All(SingleUse) && node.Output.Count(o => o.Length > 0) == 1)
                {
                    perChannel.AddRange(node.Input.Skip(1).Take(4).Select(n => (n, 0)));
                    current = node.Output[0];
                }
                else if (PassThrough.Contains(node.OpType) && node.Input[0] == current && node.Output.Count(o => o.Length > 0) == 1)
                    current = node.Output[0];
                else if (node.OpType == "Flatten" && Attr(node, "axis", 1) == 1 && block == 1 && analyzed.Shapes.TryGetValue(current, out var shape) && shape.Length >= 2)
                {
                    activation = current;
                    block = Shape.Size(shape, 2, shape.Length);
                    current = node.Output[0];
                    continue;
                }
                else if (node.OpType == "Conv" && block == 1 && node.Input[0] == current && SingleUse(node.Input[1]) && Attr(node, "group", 1) == 1)
                {
                    consumer = node;
                    activation = current;
                    break;
                }
                else if (node.OpType == "Gemm" && node.Input[0] == current && SingleUse(node.Input[1]) && Attr(node, "transA", 0) == 0)
                {
                    consumer = node;
                    if (block == 1) activation = current;
                    break;
                }
                else break;
                if (block == 1) activation = current;
            }
            if (consumer is null || !analyzed.Shapes.TryGetValue(activation, out var actShape) || actShape.Length < 2 || actShape[1] != channels) continue;
            var weightAxis = consumer.OpType == "Conv" ? 1 : Attr(consumer, "transB", 0) != 0 ? 1 : 0;
            groups.Add(new ChannelGroup
            {
                Producer = producer, ProducerName = string.IsNullOrEmpty(producer.Name) ? producer.Output[0] : producer.Name,
                Channels = channels, PerChannel = perChannel, Consumer = consumer,
                ConsumerWeight = (consumer.Input[1], weightAxis), Block = block, Activation = activation,
                ConsumerIsGemm = consumer.OpType == "Gemm",
                ConsumerIndex = graph.Node.IndexOf(consumer),
                MacsPerChannel = (Macs(producer) + Macs(consumer)) / Math.Max(1, channels),
                Spatial = Shape.Size(actShape, 2, actShape.Length),
            });
        }
        return groups;
    }

    /// <summary>
    /// Why the output channels of a Conv or Dense layer cannot be node-pruned, for the report: the layer its channels
    /// reach that node pruning does not follow (Split, Slice, Transpose, Gather, Pad, Resize, Concat, an Add, Mul...),
    /// several readers, or the model output. Null when the channels reach a Conv or Gemm (a group, or pruning found no step).
    /// </summary>
    public static string? LeftAloneReason(ModelGraph analyzed, Layer layer)
    {
        var readers = analyzed.Layers.Where(l => l != layer).SelectMany(l => l.Inputs.Distinct().Select(i => (Input: i, Layer: l)))
            .ToLookup(p => p.Input, p => p.Layer, StringComparer.Ordinal);
        var current = layer;
        while (true)
        {
            if (current.Output == analyzed.OutputName) return current == layer ? null : $"its channels reach the model output through {current.Kind} '{current.Name}'";
            var next = readers[current.Output].ToList();
            if (next.Count != 1)
                return next.Count == 0 ? null : $"its channels are read by {next.Count} layers ({string.Join(", ", next.Select(n => $"{n.Kind} '{n.Name}'"))}); removing one would change them all";
            var reader = next[0];
            switch (reader)
            {
                case WeightedLayer weighted:
                    return weighted.Grouped ? $"its channels feed the grouped or depthwise Conv '{weighted.Name}', whose input channels node pruning does not remove" : null;
                case ScaleShiftLayer or UnaryLayer or PoolLayer or GlobalPoolLayer or ReshapeLayer { Kind: "Flatten" or "Identity" or "Dropout" }:
                    current = reader;
                    continue;
                case StridedCopyLayer or GatherLayer or PadLayer or ResizeLayer or ReshapeLayer or ConcatLayer:
                    return $"its channels reach {reader.Kind} '{reader.Name}', which splits, reorders or joins channels; node pruning does not follow channels through it";
                default:
                    return $"its channels reach {reader.Kind} '{reader.Name}', which node pruning does not follow";
            }
        }
    }

    /// <summary>
    /// Channel importance: E[a_j^2] (from calibration activations, per channel over samples and positions) times the
    /// energy of the consumer weights that read channel j; without data, the producer filter's L2 norm.
    /// </summary>
    public static double[] Importance(ChannelGroup g, OnnxGraph graph, float[]? activations)
    {
        if (activations is null)
            return AxisEnergy(graph.Constant(g.PerChannel[0].Name), g.PerChannel[0].Axis, g.Channels, 1);
        var weightEnergy = AxisEnergy(graph.Constant(g.ConsumerWeight.Name), g.ConsumerWeight.Axis, g.Channels, g.Block);
        var meanSquare = ChannelMeans(activations, g.Channels, g.Spatial, squares: true);
        var scores = new double[g.Channels];
        for (int j = 0; j < g.Channels; j++) scores[j] = meanSquare[j] * weightEnergy[j];
        return scores;
    }

    /// <summary>Sum of squares of a tensor's values per channel along <paramref name="axis"/> (each channel a block of indices).</summary>
    private static double[] AxisEnergy(Tensor t, int axis, int channels, int block)
    {
        int inner = Shape.Size(t.Dims, axis + 1, t.Dims.Length), outer = Shape.Size(t.Dims, 0, axis), size = t.Dims[axis];
        var energy = new double[channels];
        for (int o = 0; o < outer; o++)
            for (int k = 0; k < size; k++)
                for (int i = 0; i < inner; i++) { double v = t.Data[(o * size + k) * inner + i]; energy[k / block] += v * v; }
        return energy;
    }

    /// <summary>Mean of a (or of a^2 with <paramref name="squares"/>) per channel of an [N, C, spatial] tensor, flattened.</summary>
    public static double[] ChannelMeans(float[] a, int channels, int spatial, bool squares = false)
    {
        var sums = new double[channels];
        long samples = a.Length / ((long)channels * spatial);
        for (long n = 0; n < samples; n++)
            for (int c = 0; c < channels; c++)
                foreach (var v in a.AsSpan((int)((n * channels + c) * spatial), spatial)) sums[c] += squares ? (double)v * v : v;
        for (int c = 0; c < channels; c++) sums[c] /= Math.Max(1, samples * spatial);
        return sums;
    }

    /// <summary>
    /// Removes every channel not in <paramref name="keep"/> (sorted) from the group's tensors, reading each tensor's
    /// current value from <paramref name="model"/> so groups that share a layer compose. A refit consumer weight
    /// ([outputs x kept inputs], layer orientation) replaces the sliced one.
    /// </summary>
    public static void Apply(ModelProto model, ChannelGroup g, int[] keep, (float[] Weight, float[] BiasDelta)? refit = null, double[]? channelMeans = null)
    {
        Tensor Current(string name) => Initializers.Read(model, name);
        if (refit is null && channelMeans is not null && !g.ConsumerIsGemm)
            AddBias(model, g, MeanCompensation(keep, channelMeans, Current(g.ConsumerWeight.Name)));
        foreach (var (name, axis) in g.PerChannel)
            Initializers.Replace(model, TensorSlicing.Slice(Current(name), axis, keep));
        var consumer = Current(g.ConsumerWeight.Name);
        var sliced = TensorSlicing.Slice(consumer, g.ConsumerWeight.Axis, keep, g.Block);
        if (refit is { } r)
        {
            var dims = sliced.Dims.Select(d => (int)d).ToArray();
            float[] data = r.Weight;
            if (g.ConsumerIsGemm && g.ConsumerWeight.Axis == 0)
            {
                // Gemm without transB stores B as [inputs, outputs]: transpose the [outputs, inputs] refit.
                int inputs = dims[0], outputs = dims[1];
                data = new float[r.Weight.Length];
                for (int o = 0; o < outputs; o++)
                    for (int c = 0; c < inputs; c++) data[c * outputs + o] = r.Weight[o * inputs + c];
            }
            sliced = Initializers.Make(consumer.Name, dims, data);
            AddBias(model, g, r.BiasDelta);
        }
        Initializers.Replace(model, sliced);
    }

    /// <summary>
    /// Without a refit, a removed channel's average contribution moves into the consumer's bias:
    /// b[m] += sum_j E[a_j] * sum_taps W[m, j] (exact away from the zero padding).
    /// </summary>
    private static float[] MeanCompensation(int[] keep, double[] means, Tensor weight)
    {
        int outputs = weight.Dims[0], inputs = weight.Dims[1], taps = Shape.Size(weight.Dims, 2, weight.Dims.Length);
        var kept = keep.ToHashSet();
        var delta = new float[outputs];
        for (int m = 0; m < outputs; m++)
        {
            double sum = 0;
            for (int j = 0; j < inputs; j++)
            {
                if (kept.Contains(j)) continue;
                double tapSum = 0;
                for (int t = 0; t < taps; t++) tapSum += weight.Data[(m * inputs + j) * taps + t];
                sum += means[j] * tapSum;
            }
            delta[m] = (float)sum;
        }
        return delta;
    }

    /// <summary>Adds to the consumer's bias (Conv B or Gemm C), creating it when the node has none.</summary>
    private static void AddBias(ModelProto model, ChannelGroup g, float[] delta)
    {
        var node = model.Graph.Node[g.ConsumerIndex];
        if (node.Input.Count > 2 && node.Input[2].Length > 0)
        {
            var bias = Initializers.Read(model, node.Input[2]);
            if (bias.Data.Length != delta.Length) return; // a broadcast Gemm C of another shape: leave it
            Initializers.Replace(model, Initializers.Make(bias.Name, bias.Dims, bias.Data.Zip(delta, (b, d) => b + d).ToArray()));
        }
        else
        {
            var name = node.Input[1] + "_scalpel_bias";
            model.Graph.Initializer.Add(Initializers.Make(name, [delta.Length], delta));
            if (node.Input.Count == 2) node.Input.Add(name); else node.Input[2] = name;
        }
    }

    private static long Attr(NodeProto node, string name, long fallback) => node.Attribute.FirstOrDefault(a => a.Name == name)?.I ?? fallback;
}
