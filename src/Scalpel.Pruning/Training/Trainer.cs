using System.Diagnostics;
using System.Globalization;
using System.Numerics.Tensors;
using Scalpel.Onnx;
using Scalpel.Pruning.Data;

namespace Scalpel.Pruning.Training;

public sealed record TrainOptions
{
    public int Epochs { get; init; } = 2;
    public int BatchSize { get; init; } = 64;
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Adam;
    /// <summary>Peak learning rate; a cosine schedule takes it to zero over the run.</summary>
    public float LearningRate { get; init; } = 1e-4f;
    public float Momentum { get; init; } = 0.9f;
    public float WeightDecay { get; init; }
    /// <summary>Weight of distillation from the original model's logits (0: labels only).</summary>
    public float Distillation { get; init; }
    public float Temperature { get; init; } = 4f;
    /// <summary>L1 penalty on node gates: lambda * sum |gate| joins the loss, pulling unneeded nodes' gates to zero.</summary>
    public float GatePenalty { get; init; }
    public int Seed { get; init; } = 1;
    /// <summary>Threads at most (0: all cores). Results do not depend on it.</summary>
    public int Threads { get; init; }
    public IProgress<string>? Progress { get; init; }
    public CancellationToken Cancellation { get; init; }
    /// <summary>Called after each epoch but the last with the epoch's index (from 0); false ends training there (early stopping).</summary>
    public Func<int, bool>? AfterEpoch { get; init; }
}

/// <summary>
/// Mini-batch training. A batch is split into a fixed number of shards that run in parallel on all cores, each
/// shard's samples forward and backward together (Dense and Conv as matrix products), each shard with its own
/// gradients; the shards' gradients are then summed in shard order and the optimizer updates the weights, both in
/// parallel over fixed ranges of the parameters. A Dense weight's gradient is instead one product over the whole
/// mini-batch, from the activations and output gradients the shards keep, computed range by range just before the
/// update (a shard's own would read and write the whole gradient for a few multiply-adds per entry). Results depend
/// on the seed alone, not on the machine's core count or thread timing.
/// </summary>
public static class Trainer
{
    public const int Shards = 16;

    /// <summary>Floats per range of the parallel gradient sum and update.</summary>
    private const int Chunk = 16384;

    /// <summary>Trains in place; returns the mean training loss of each epoch.</summary>
    /// <param name="teacher">The original model's logits for each training sample ([N, classes]), for distillation.</param>
    public static List<double> Train(Network net, Dataset train, float[]? teacher, TrainOptions o)
    {
        if (train.Labels is null) throw new ScalpelException(ErrorCode.Data, $"{train.Source}: training needs labels.");
        int perShard = (Math.Min(o.BatchSize, train.Count) + Shards - 1) / Shards;
        var shards = Enumerable.Range(0, Shards).Select(_ => net.CreateBatch(perShard)).ToArray();
        var optimizer = new Optimizer(o.Optimizer, net.Parameters, o.Momentum, o.WeightDecay);
        var trainable = net.Parameters.ToHashSet();
        // A Dense weight's gradient is one product over the whole mini-batch (DenseStep.WeightGradient), for whole rows.
        var dense = net.Steps.OfType<DenseStep>().ToDictionary(d => d.Weight);
        // Fixed ranges of every parameter's gradient: summed over shards (trainable ones then updated), then cleared.
        var chunks = net.AllParameters.SelectMany(p =>
        {
            int chunk = dense.TryGetValue(p, out var d) ? Math.Max(4, Chunk / d.RowLength / 4 * 4) * d.RowLength : Chunk; // whole rows, 4 at a time (the product's row block)
            return Enumerable.Range(0, (p.Value.Length + chunk - 1) / chunk)
                .Select(i => (Parameter: p, Start: i * chunk, Length: Math.Min(chunk, p.Value.Length - i * chunk)));
        }).ToArray();
        var shardCounts = new int[Shards];
        int batches = (train.Count + o.BatchSize - 1) / o.BatchSize, total = batches * o.Epochs, step = 0;
        var losses = new List<double>();
        var clock = Stopwatch.StartNew();
        var lastReport = TimeSpan.Zero;
        var shardLoss = new double[Shards];
        using var team = new WorkerTeam(Math.Min(Shards, o.Threads > 0 ? o.Threads : Environment.ProcessorCount));
        bool inputGradient = net.ComputesInputGradient;
        net.ComputesInputGradient = false;
        net.DefersDenseWeightGradients = true;
        try
        {
            foreach (var batch in shards) batch[0].ClearParameterGradients();
            for (int epoch = 0; epoch < o.Epochs; epoch++)
            {
                var order = Enumerable.Range(0, train.Count).ToArray();
                new Random(unchecked(o.Seed * 7919 + epoch) & int.MaxValue).Shuffle(order); // not HashCode: it is seeded per process
                double epochLoss = 0;
                for (int b = 0; b < batches; b++, step++)
                {
                    o.Cancellation.ThrowIfCancellationRequested();
                    int start = b * o.BatchSize, count = Math.Min(o.BatchSize, train.Count - start);
                    for (int s = 0; s < Shards; s++) shardCounts[s] = (s + 1) * count / Shards - s * count / Shards;
                    team.For(Shards, s => shardLoss[s] = Shard(net, shards[s], train, teacher, order, start + s * count / Shards, start + (s + 1) * count / Shards, o));
                    float lr = o.LearningRate * 0.5f * (1f + MathF.Cos(MathF.PI * step / total));
                    optimizer.BeginStep();
                    team.For(chunks.Length, i =>
                    {
                        var (p, from, length) = chunks[i];
                        var g = shards[0][0].ParameterGradients[p];
                        var range = g.AsSpan(from, length);
                        if (dense.TryGetValue(p, out var d))
                        {
                            if (trainable.Contains(p)) d.WeightGradient(shards, shardCounts, from / d.RowLength, (from + length) / d.RowLength);
                        }
                        else for (int s = 1; s < Shards; s++)
                        {
                            var other = shards[s][0].ParameterGradients[p].AsSpan(from, length);
                            TensorPrimitives.Add(range, other, range);
                            other.Clear();
                        }
                        if (trainable.Contains(p))
                        {
                            TensorPrimitives.Multiply(range, 1f / count, range);
                            var w = p.Value.AsSpan(from, length);
                            if (p.Role == ParameterRole.Gate)
                                for (int j = 0; j < length; j++) range[j] += o.GatePenalty * MathF.Sign(w[j]);
                            optimizer.Update(p, g, from, length, lr);
                            if (p.Role == ParameterRole.Gate) TensorPrimitives.Max(w, 0f, w); // gates stay >= 0
                        }
                        range.Clear();
                    });
                    epochLoss += shardLoss.Sum();
                    if (clock.Elapsed - lastReport > TimeSpan.FromSeconds(10) && o.Progress is { } progress)
                    {
                        lastReport = clock.Elapsed;
                        var left = TimeSpan.FromSeconds(clock.Elapsed.TotalSeconds / (step + 1) * (total - step - 1));
                        progress.Report(string.Create(CultureInfo.InvariantCulture, $"    epoch {epoch + 1}/{o.Epochs}: {100.0 * (b + 1) / batches:0}%, loss {epochLoss / (start + count):0.0000}, about {left.TotalSeconds:0} s left"));
                    }
                }
                losses.Add(epochLoss / train.Count);
                if (epoch < o.Epochs - 1 && o.AfterEpoch?.Invoke(epoch) == false) break;
            }
        }
        finally
        {
            net.ComputesInputGradient = inputGradient;
            net.DefersDenseWeightGradients = false;
        }
        return losses;
    }

    /// <summary>Samples order[from..to) forward and backward together, adding their gradients into the shard's; returns their summed loss.</summary>
    private static double Shard(Network net, Workspace[] batch, Dataset train, float[]? teacher, int[] order, int from, int to, TrainOptions o)
    {
        int n = to - from;
        if (n == 0) return 0;
        for (int i = 0; i < n; i++) train.Sample(order[from + i]).CopyTo(net.Input(batch[i]));
        net.Forward(batch, n);
        Span<float> grad = stackalloc float[net.Classes <= 1024 ? net.Classes : 0];
        if (grad.Length != net.Classes) grad = new float[net.Classes];
        double sum = 0;
        for (int i = 0; i < n; i++)
        {
            int sample = order[from + i];
            var t = teacher is null ? ReadOnlySpan<float>.Empty : teacher.AsSpan(sample * net.Classes, net.Classes);
            sum += Loss.SoftmaxCrossEntropy(net.Logits(batch[i]), train.Labels![sample], t, o.Distillation, o.Temperature, grad);
            net.LogitsGradient(batch[i], grad);
        }
        net.Backward(batch, n);
        return sum;
    }

    /// <summary>Top-1 predictions of the network for every sample (parallel, deterministic).</summary>
    public static int[] Predict(Network net, Dataset data)
    {
        const int batchSize = 16;
        var top1 = new int[data.Count];
        Parallel.For(0, Shards, () => net.CreateBatch(batchSize), (s, _, batch) =>
        {
            int end = (s + 1) * data.Count / Shards;
            for (int first = s * data.Count / Shards; first < end; first += batchSize)
            {
                int n = Math.Min(batchSize, end - first);
                for (int i = 0; i < n; i++) data.Sample(first + i).CopyTo(net.Input(batch[i]));
                net.Forward(batch, n);
                for (int i = 0; i < n; i++) top1[first + i] = TensorPrimitives.IndexOfMax(net.Logits(batch[i]));
            }
            return batch;
        }, _ => { });
        return top1;
    }
}
