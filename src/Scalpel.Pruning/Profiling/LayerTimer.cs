using System.Diagnostics;
using Scalpel.CodeGen;
using Scalpel.Onnx.Layers;

namespace Scalpel.Pruning.Profiling;

/// <summary>
/// Measures each Dense/Conv layer's generated kernel on this machine, batch 1: the layer alone is emitted as a
/// one-layer model, pruned and as the original dense layer, compiled with Roslyn and timed (median of interleaved
/// rounds). Only meaningful when the target's vectors are hardware-accelerated here.
/// </summary>
public static class LayerTimer
{
    private const int Rounds = 9;
    private const double RoundMilliseconds = 3;
    private const double WarmupMilliseconds = 300;

    /// <summary>Microseconds per batch-1 call of each layer (by name): (pruned, original dense).</summary>
    public static Dictionary<string, (double Pruned, double Dense)> Measure(ModelGraph original, ModelGraph pruned, CodeTarget target, CancellationToken cancel = default)
    {
        var pairs = pruned.Layers.OfType<WeightedLayer>()
            .Select(l => (Pruned: l, Dense: DenseCopy(original.Layers.First(o => o.Name == l.Name))))
            .ToList();
        var times = Time(pairs.SelectMany(p => new[] { new TimedLayer(p.Pruned, pruned, target), new TimedLayer(p.Dense, original, target) }).ToList(), cancel);
        var result = new Dictionary<string, (double, double)>();
        for (int i = 0; i < pairs.Count; i++)
            result[pairs[i].Pruned.Name] = (times[2 * i], times[2 * i + 1]);
        return result;
    }

    /// <summary>A layer to time alone: its graph gives the shapes, the target its code.</summary>
    public sealed record TimedLayer(Layer Layer, ModelGraph Graph, CodeTarget Target);

    /// <summary>
    /// Microseconds per batch-1 call of each layer alone, compiled together and timed in interleaved rounds: the
    /// median round, or with <paramref name="fastest"/> the fastest (a shared machine's noise only adds time, so the
    /// fastest round is the steadier estimate of which of two kernels is faster).
    /// </summary>
    public static double[] Time(IReadOnlyList<TimedLayer> layers, CancellationToken cancel = default, bool fastest = false)
    {
        var models = new List<GeneratedModel>();
        for (int i = 0; i < layers.Count; i++)
        {
            var (layer, graph, target) = layers[i];
            var single = new ModelGraph
            {
                Source = "layer", Opset = graph.Opset, BatchMode = BatchMode.PerSample, InputName = layer.Inputs[0],
                InputShape = graph.Shapes[layer.Inputs[0]], OutputName = layer.Output, OutputShape = layer.OutputShape,
                Layers = [layer], Shapes = graph.Shapes,
            };
            models.Add(CSharpEmitter.Emit(single, new EmitOptions("ScalpelLayerTiming", $"L{i}", target, layer.Name)));
        }
        var compiled = RoslynCompiler.Compile("ScalpelLayerTiming", models.Select(m => m.Source));
        var runs = models.Select((m, i) => compiled.Instantiate($"ScalpelLayerTiming.L{i}", m)).ToArray();
        var inputs = layers.Select(l => new float[Onnx.Shape.Size(l.Graph.Shapes[l.Layer.Inputs[0]])]).ToArray();
        var outputs = layers.Select(l => new float[Onnx.Shape.Size(l.Layer.OutputShape)]).ToArray();
        var rng = new Random(1);
        foreach (var x in inputs) for (int i = 0; i < x.Length; i++) x[i] = (float)rng.NextDouble();

        var samples = runs.Select(_ => new List<double>()).ToArray();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalMilliseconds < WarmupMilliseconds)
            for (int k = 0; k < runs.Length; k++) runs[k](inputs[k], outputs[k], 1);
        for (int round = 0; round < Rounds; round++)
            for (int k = 0; k < runs.Length; k++)
            {
                cancel.ThrowIfCancellationRequested();
                int calls = 0;
                var watch = Stopwatch.StartNew();
                while (watch.Elapsed.TotalMilliseconds < RoundMilliseconds) { runs[k](inputs[k], outputs[k], 1); calls++; }
                samples[k].Add(watch.Elapsed.TotalMilliseconds * 1000 / calls);
            }
        return samples.Select(s => fastest ? s.Min() : Samples.Median(s)).ToArray();
    }

    /// <summary>Whether the target's vector width runs in hardware on this machine (else its timings mean little).</summary>
    public static bool Accelerated(CodeTarget target) => CodeTarget.RunsInHardware(target.SimdBits) && (!target.Fma || System.Runtime.Intrinsics.X86.Fma.IsSupported || System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported);

    /// <summary>The layer as the original dense layer (same sizes and weights, dense format).</summary>
    private static Layer DenseCopy(Layer layer) => layer is WeightedLayer w ? w with { Format = WeightFormat.Dense, GroupWidth = 1 } : layer;
}
