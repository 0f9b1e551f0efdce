using Microsoft.ML.OnnxRuntime;

namespace Scalpel.Tests;

/// <summary>ONNX Runtime on CPU, one thread: the reference the generated code is checked against.</summary>
public sealed class OrtReference : IDisposable
{
    /// <summary>
    /// Sessions are made, run and released one at a time across the test threads: with several at once, the test
    /// host died in about one CodeGen test run in three, a segfault inside libonnxruntime.so (ONNX Runtime 1.31.1).
    /// </summary>
    private static readonly Lock Serial = new();

    private readonly InferenceSession _session;
    private readonly string _input;
    private readonly long[] _sampleShape;

    public OrtReference(string modelPath)
    {
        lock (Serial)
        {
            using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
            _session = new InferenceSession(modelPath, options);
            _input = _session.InputNames[0];
            _sampleShape = _session.InputMetadata[_input].Dimensions.Skip(1).Select(d => (long)d).ToArray();
        }
    }

    /// <summary>Runs <paramref name="batch"/> samples stored one after another; returns the flat output.</summary>
    public float[] Run(float[] input, int batch)
    {
        lock (Serial)
        {
            using var value = OrtValue.CreateTensorValueFromMemory(input, [batch, .. _sampleShape]);
            using var runOptions = new RunOptions();
            using var results = _session.Run(runOptions, [_input], [value], [_session.OutputNames[0]]);
            return results[0].GetTensorDataAsSpan<float>().ToArray();
        }
    }

    public void Dispose()
    {
        lock (Serial) _session.Dispose();
    }
}
