using BenchmarkDotNet.Attributes;
using Microsoft.ML.OnnxRuntime;
using Scalpel.CodeGen;
using Scalpel.Pruning.Data;
using Scalpel.Tests;

namespace Scalpel.Benchmarks;

/// <summary>
/// Generated Run() against ONNX Runtime (CPU, IntraOpNumThreads = 1) on the same model and the same
/// Fashion-MNIST images, in one process. The Ratio column is generated time / ONNX Runtime time.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class InferenceBenchmarks
{
    [Params("mlp", "lenet5", "rescnn")]
    public string Model { get; set; } = "mlp";

    [Params(1, 32)]
    public int Batch { get; set; }

    private RunBatch _generated = null!;
    private InferenceSession _session = null!;
    private RunOptions _runOptions = null!;
    private OrtValue _ortInput = null!, _ortOutput = null!;
    private string[] _inputNames = null!, _outputNames = null!;
    private float[] _input = null!, _output = null!, _ortOutputBuffer = null!;

    [GlobalSetup]
    public void Setup()
    {
        var path = TestData.Fixture(Model + ".onnx");
        var code = ModelCompiler.Generate(path, CodeTarget.Host(), "Bench." + Model, "Model");
        _generated = GeneratedAssembly.CompileOne(code, "Bench." + Model);

        var images = NpyFile.Read(Path.Combine(TestData.Fixtures, "data", "fmnist-test-1000-x.npy"));
        int sample = images.Floats!.Length / images.Count;
        _input = images.Floats.AsSpan(0, Batch * sample).ToArray();
        _output = new float[Batch * 10];

        using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        _session = new InferenceSession(path, options);
        _runOptions = new RunOptions();
        _inputNames = [_session.InputNames[0]];
        _outputNames = [_session.OutputNames[0]];
        long[] shape = [Batch, .. _session.InputMetadata[_inputNames[0]].Dimensions.Skip(1).Select(d => (long)d)];
        _ortInput = OrtValue.CreateTensorValueFromMemory(_input, shape);
        _ortOutputBuffer = new float[Batch * 10];
        _ortOutput = OrtValue.CreateTensorValueFromMemory(_ortOutputBuffer, [Batch, 10]);
    }

    [Benchmark(Baseline = true, Description = "ONNX Runtime")]
    public void OnnxRuntime() => _session.Run(_runOptions, _inputNames, [_ortInput], _outputNames, [_ortOutput]);

    [Benchmark(Description = "Generated")]
    public void Generated() => _generated(_input, _output, Batch);

    [GlobalCleanup]
    public void Cleanup()
    {
        _ortInput.Dispose();
        _ortOutput.Dispose();
        _runOptions.Dispose();
        _session.Dispose();
    }
}
