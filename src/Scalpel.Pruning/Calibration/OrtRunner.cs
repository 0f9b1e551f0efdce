using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Scalpel.Onnx.Proto;
using Scalpel.Pruning.Data;

namespace Scalpel.Pruning.Calibration;

/// <summary>
/// Runs a model (as a ModelProto in memory) in ONNX Runtime on CPU, returning its output and, on request,
/// intermediate tensors, which are added to the graph as extra outputs.
/// </summary>
public sealed class OrtRunner : IDisposable
{
    private const int BatchSize = 64;
    private readonly InferenceSession _session;
    private readonly string _input;
    private readonly long[] _sampleShape;
    private readonly string[] _outputs;

    public OrtRunner(ModelProto model, IEnumerable<string>? extraOutputs = null)
    {
        var copy = model.Clone();
        foreach (var name in extraOutputs ?? [])
            if (copy.Graph.Output.All(o => o.Name != name))
                copy.Graph.Output.Add(new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1 } } });
        using var options = new SessionOptions { IntraOpNumThreads = Environment.ProcessorCount, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        _session = new InferenceSession(copy.ToByteArray(), options);
        _input = _session.InputNames[0];
        _sampleShape = _session.InputMetadata[_input].Dimensions.Skip(1).Select(d => (long)d).ToArray();
        _outputs = _session.OutputNames.ToArray();
    }

    /// <summary>Every output for every sample, flattened per output name: [Count * per-sample size].</summary>
    public Dictionary<string, float[]> Run(Dataset data)
    {
        // Each output's array is allocated once at its final size (a growing list would hold up to three copies at its peak).
        var arrays = new float[_outputs.Length][];
        for (int start = 0; start < data.Count; start += BatchSize)
        {
            int n = Math.Min(BatchSize, data.Count - start);
            var slice = data.Inputs.AsSpan(start * data.SampleSize, n * data.SampleSize).ToArray();
            using var input = OrtValue.CreateTensorValueFromMemory(slice, [n, .. _sampleShape]);
            using var runOptions = new RunOptions();
            using var results = _session.Run(runOptions, [_input], [input], _outputs);
            for (int i = 0; i < _outputs.Length; i++)
            {
                var values = results[i].GetTensorDataAsSpan<float>();
                int perSample = values.Length / n;
                arrays[i] ??= new float[(long)perSample * data.Count];
                values.CopyTo(arrays[i].AsSpan(start * perSample));
            }
        }
        return _outputs.Select((o, i) => (o, arrays[i] ?? [])).ToDictionary(p => p.o, p => p.Item2);
    }

    public string PrimaryOutput => _outputs[0];

    public void Dispose() => _session.Dispose();
}
