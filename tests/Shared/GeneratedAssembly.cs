global using RunBatch = Scalpel.Pruning.Profiling.RunBatch;
using Scalpel.CodeGen;
using Scalpel.Pruning.Profiling;

namespace Scalpel.Tests;

/// <summary>Compiles generated sources as a consuming project would (optimised), strictly: a warning fails the test.</summary>
public static class GeneratedAssembly
{
    public static RoslynCompiler Compile(string name, IEnumerable<string> sources, IEnumerable<(string Name, byte[] Data)>? resources = null) =>
        RoslynCompiler.Compile(name, sources, resources, warningsAsErrors: true);

    public static RunBatch CompileOne(GeneratedModel model, string ns) =>
        Compile(ns + "." + model.ClassName, [model.Source]).Instantiate(ns + "." + model.ClassName, model.Weights);
}
