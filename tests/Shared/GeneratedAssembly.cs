using System.Reflection;
using System.Runtime.Loader;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Scalpel.CodeGen;

namespace Scalpel.Tests;

/// <summary>The generated Run(input, output, batchSize) method, bound to an instance.</summary>
public delegate void RunBatch(ReadOnlySpan<float> input, Span<float> output, int batchSize);

/// <summary>Compiles generated sources with Roslyn (as a consuming project would, optimised) and loads them.</summary>
public static class GeneratedAssembly
{
    private static readonly Lazy<MetadataReference[]> References = new(() =>
        ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => Path.GetFileName(p).StartsWith("System.", StringComparison.Ordinal) || Path.GetFileName(p) is "mscorlib.dll" or "netstandard.dll")
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToArray());

    /// <summary>Compiles all sources into one assembly; throws with the compiler's errors if any.</summary>
    public static Assembly Compile(string name, IEnumerable<string> sources, IEnumerable<(string Name, byte[] Data)>? resources = null)
    {
        var trees = sources.Select(s => CSharpSyntaxTree.ParseText(s, new CSharpParseOptions(LanguageVersion.Latest))).ToArray();
        var compilation = CSharpCompilation.Create(name, trees, References.Value,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, optimizationLevel: OptimizationLevel.Release,
                nullableContextOptions: NullableContextOptions.Enable));
        using var pe = new MemoryStream();
        var manifest = resources?.Select(r => new ResourceDescription(r.Name, () => new MemoryStream(r.Data), true));
        var emit = compilation.Emit(pe, manifestResources: manifest);
        var problems = emit.Diagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning).ToList();
        if (!emit.Success || problems.Count > 0)
            throw new InvalidOperationException("generated code does not compile cleanly:\n" + string.Join("\n", problems.Take(20)));
        pe.Position = 0;
        return new AssemblyLoadContext(name, isCollectible: true).LoadFromStream(pe);
    }

    public static RunBatch Instantiate(Assembly assembly, string fullName, byte[] weights)
    {
        var type = assembly.GetType(fullName, throwOnError: true)!;
        object instance;
        try
        {
            instance = Activator.CreateInstance(type, new MemoryStream(weights))!;
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException);
            throw;
        }
        var run = type.GetMethod("Run", [typeof(ReadOnlySpan<float>), typeof(Span<float>), typeof(int)])!;
        return (RunBatch)Delegate.CreateDelegate(typeof(RunBatch), instance, run);
    }

    public static RunBatch CompileOne(GeneratedModel model, string ns) =>
        Instantiate(Compile(ns + "." + model.ClassName, [model.Source]), ns + "." + model.ClassName, model.Weights);
}
