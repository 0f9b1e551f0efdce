using System.Text;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;

namespace Scalpel.CodeGen;

/// <summary>Load, analyse and emit an unpruned model; writes C.g.cs and C.bin atomically (all or nothing).</summary>
public static class ModelCompiler
{
    public sealed record Result(ModelGraph Model, GeneratedModel Code, string SourcePath, string WeightsPath);

    public static GeneratedModel Generate(string modelPath, CodeTarget target, string ns, string className)
    {
        var model = GraphAnalyzer.Analyze(OnnxModel.Load(modelPath));
        return CSharpEmitter.Emit(model, new EmitOptions(ns, className, target, Path.GetFileName(modelPath)));
    }

    public static Result Compile(string modelPath, CodeTarget target, string outDir, string ns, string className, long maxModelBytes = OnnxModel.DefaultMaxTensorBytes)
    {
        var model = GraphAnalyzer.Analyze(OnnxModel.Load(modelPath, maxModelBytes));
        var code = CSharpEmitter.Emit(model, new EmitOptions(ns, className, target, Path.GetFileName(modelPath)));
        var source = Path.Combine(outDir, className + ".g.cs");
        var weights = Path.Combine(outDir, className + ".bin");
        WriteAll(outDir, [(weights, code.Weights), (source, Encoding.UTF8.GetBytes(code.Source))]);
        return new Result(model, code, source, weights);
    }

    /// <summary>Writes every file to a temporary name first and renames only when all are written, in list order.</summary>
    public static void WriteAll(string outDir, IReadOnlyList<(string Path, byte[] Bytes)> files)
    {
        Directory.CreateDirectory(outDir);
        var temps = files.Select(f => f.Path + ".tmp-" + Environment.ProcessId).ToList();
        try
        {
            for (int i = 0; i < files.Count; i++) File.WriteAllBytes(temps[i], files[i].Bytes);
            for (int i = 0; i < files.Count; i++) File.Move(temps[i], files[i].Path, overwrite: true);
        }
        finally
        {
            foreach (var t in temps) if (File.Exists(t)) File.Delete(t);
        }
    }
}
