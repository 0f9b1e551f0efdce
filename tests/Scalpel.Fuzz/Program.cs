using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Pruning.Data;
using SharpFuzz;

namespace Scalpel.Fuzz;

/// <summary>
/// afl++ harness: each input is an ONNX model ("model") or a .npy file ("npy"). A ScalpelException is the
/// expected way to refuse bad input; any other exception is a crash for afl to keep.
/// </summary>
public static class Program
{
    public static void Main(string[] args)
    {
        if (args is ["seeds", var mode, var dir])
        {
            WriteSeeds(mode, dir);
            return;
        }
        var npyPath = Path.Combine(Path.GetTempPath(), $"scalpel-fuzz-{Environment.ProcessId}.npy");
        Action<Stream> run = args.FirstOrDefault() switch
        {
            "model" => stream =>
            {
                try
                {
                    var model = GraphAnalyzer.Analyze(OnnxModel.Load(stream, null, "fuzz.onnx"));
                    // Instrumented code runs only inside Fuzzer.Run, where afl's coverage map exists.
                    CSharpEmitter.Emit(model, new EmitOptions("Fuzz", "Model", CodeTarget.Resolve("x64-avx2"), "fuzz.onnx"));
                }
                catch (ScalpelException) { }
            },
            "npy" => stream =>
            {
                using (var file = File.Create(npyPath)) stream.CopyTo(file);
                try { Dataset.Load(npyPath, null, [1, 28, 28], maxSamples: 8); }
                catch (ScalpelException) { }
            },
            _ => throw new ArgumentException("usage: Scalpel.Fuzz model|npy (inputs come from afl-fuzz)"),
        };
        Fuzzer.OutOfProcess.Run(run);
    }

    /// <summary>Starting inputs: the fixture models under afl's 1 MB input limit, or the first 4 calibration images as a small .npy.</summary>
    private static void WriteSeeds(string mode, string dir)
    {
        var fixtures = Path.Combine(AppContext.BaseDirectory, "fixtures");
        if (mode == "model")
            foreach (var name in new[] { "lenet5.onnx", "rescnn.onnx" })
                File.Copy(Path.Combine(fixtures, name), Path.Combine(dir, name), overwrite: true);
        else
            NpyFile.Write(Path.Combine(dir, "x.npy"), NpyFile.Read(Path.Combine(fixtures, "fmnist-calib-512-x.npy"), 4).Floats!, 4, 1, 28, 28);
    }
}
