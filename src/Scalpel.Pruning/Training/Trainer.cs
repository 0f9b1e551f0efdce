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
    public IProgress<string>? Progress { get; init; }
    public CancellationToken Cancellation { get; init; }
}

/// <summary>
/// Mini-batch training. A batch is split into a fixed number of shards that run in parallel on all cores,
/// each with its own gradients, summed in shard order: results depend on the seed alone, not on the
/// machine's core count or thread timing.
/// </summary>
public static class Trainer
{
    public const int Shards = 8;

    /// <summary>Trains in place; returns the mean training loss of each epoch.</summary>
    /// <param name="teacher">The original model's logits for each training sample ([N, classes]), for distillation.</param>
    public static List<double> Train(Network net, Dataset train, float[]? teacher, TrainOptions o)
    {
        if (train.Labels is null) throw new ScalpelException(ErrorCode.Data, $"{train.Source}: training needs labels.");
        var workspaces = Enumerable.Range(0, Shards).Select(_ => net.CreateWorkspace()).ToArray();
        var gradients = workspaces[0].ParameterGradients;
        var optimizer = new Optimizer(o.Optimizer, net.Parameters, o.Momentum, o.WeightDecay);
        int batches = (train.Count + o.BatchSize - 1) / o.BatchSize, total = batches * o.Epochs, step = 0;
        var losses = new List<double>();
        var clock = Stopwatch.StartNew();
        var lastReport = TimeSpan.Zero;
        var shardLoss = new double[Shards];
        var gates = net.Parameters.Where(p => p.Role == "gate").ToList();
        for (int epoch = 0; epoch < o.Epochs; epoch++)
        {
            var order = Enumerable.Range(0, train.Count).ToArray();
            new Random(unchecked(o.Seed * 7919 + epoch) & int.MaxValue).Shuffle(order); // not HashCode: it is seeded per process
            double epochLoss = 0;
            for (int b = 0; b < batches; b++, step++)
            {
                o.Cancellation.ThrowIfCancellationRequested();
                int start = b * o.BatchSize, count = Math.Min(o.BatchSize, train.Count - start);
                Parallel.For(0, Shards, s =>
                {
                    var ws = workspaces[s];
                    ws.ClearParameterGradients();
                    var grad = new float[net.Classes];
                    double sum = 0;
                    for (int i = start + s * count / Shards; i < start + (s + 1) * count / Shards; i++)
                    {
                        int sample = order[i];
                        var logits = net.Forward(ws, train.Sample(sample));
                        var t = teacher is null ? ReadOnlySpan<float>.Empty : teacher.AsSpan(sample * net.Classes, net.Classes);
                        sum += Loss.SoftmaxCrossEntropy(logits, train.Labels[sample], t, o.Distillation, o.Temperature, grad);
                        net.Backward(ws, grad);
                    }
                    shardLoss[s] = sum;
                });
                foreach (var p in net.Parameters)
                {
                    var g = gradients[p];
                    for (int s = 1; s < Shards; s++) TensorPrimitives.Add(g, workspaces[s].ParameterGradients[p], g);
                    TensorPrimitives.Multiply(g, 1f / count, g);
                }
                foreach (var p in gates)
                    for (int i = 0; i < p.Value.Length; i++) gradients[p][i] += o.GatePenalty * MathF.Sign(p.Value[i]);
                float lr = o.LearningRate * 0.5f * (1f + MathF.Cos(MathF.PI * step / total));
                optimizer.Step(gradients, lr);
                foreach (var p in gates) TensorPrimitives.Max(p.Value, 0f, p.Value); // gates stay >= 0
                epochLoss += shardLoss.Sum();
                if (clock.Elapsed - lastReport > TimeSpan.FromSeconds(10) && o.Progress is { } progress)
                {
                    lastReport = clock.Elapsed;
                    var left = TimeSpan.FromSeconds(clock.Elapsed.TotalSeconds / (step + 1) * (total - step - 1));
                    progress.Report(string.Create(CultureInfo.InvariantCulture, $"    epoch {epoch + 1}/{o.Epochs}: {100.0 * (b + 1) / batches:0}%, loss {epochLoss / (start + count):0.0000}, about {left.TotalSeconds:0} s left"));
                }
            }
            losses.Add(epochLoss / train.Count);
        }
        return losses;
    }

    /// <summary>Top-1 predictions of the network for every sample (parallel, deterministic).</summary>
    public static int[] Predict(Network net, Dataset data)
    {
        var top1 = new int[data.Count];
        Parallel.For(0, Shards, () => net.CreateWorkspace(), (s, _, ws) =>
        {
            for (int i = s * data.Count / Shards; i < (s + 1) * data.Count / Shards; i++)
                top1[i] = TensorPrimitives.IndexOfMax(net.Forward(ws, data.Sample(i)));
            return ws;
        }, _ => { });
        return top1;
    }
}
