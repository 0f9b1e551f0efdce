using System.Reflection;
using System.Runtime.Loader;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Scalpel.CodeGen;
using Scalpel.Onnx;

namespace Scalpel.Pruning.Profiling;

/// <summary>The generated Run(input, output, batchSize) method, bound to an instance.</summary>
public delegate void RunBatch(ReadOnlySpan<float> input, Span<float> output, int batchSize);

/// <summary>
/// Compiles generated sources in process with Roslyn, optimised as a consuming project would build them, into a
/// collectible load context (unload it when the kernels are no longer needed). The tests and benchmarks compile
/// generated code the same way.
/// </summary>
public sealed class RoslynCompiler
{
    private static readonly Lazy<MetadataReference[]> References = new(LoadReferences);

    private static MetadataReference[] LoadReferences()
    {
        // The framework assemblies the running app was started with (System.*, mscorlib, netstandard).
        var trusted = AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") as string;
        if (string.IsNullOrEmpty(trusted))
            throw new ScalpelException(ErrorCode.Internal, "cannot compile the generated kernels: this process has no framework assembly list (TRUSTED_PLATFORM_ASSEMBLIES); run the tool as a framework-dependent app.");
        return trusted.Split(Path.PathSeparator)
            .Where(p => Path.GetFileName(p).StartsWith("System.", StringComparison.Ordinal) || Path.GetFileName(p) is "mscorlib.dll" or "netstandard.dll")
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))
            .ToArray();
    }

    private readonly AssemblyLoadContext _context;

    public Assembly Assembly { get; }

    private RoslynCompiler(AssemblyLoadContext context, Assembly assembly)
    {
        _context = context;
        Assembly = assembly;
    }

    /// <summary>
    /// Compiles the sources into one assembly (with optional manifest resources) and loads it; throws with the
    /// compiler's errors, and with its warnings too when <paramref name="warningsAsErrors"/> is set.
    /// </summary>
    public static RoslynCompiler Compile(string assemblyName, IEnumerable<string> sources,
        IEnumerable<(string Name, byte[] Data)>? resources = null, bool warningsAsErrors = false)
    {
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        var trees = sources.Select(s => CSharpSyntaxTree.ParseText(s, parse)).ToArray();
        var compilation = CSharpCompilation.Create(assemblyName, trees, References.Value,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, optimizationLevel: OptimizationLevel.Release,
                nullableContextOptions: NullableContextOptions.Enable, allowUnsafe: true));
        using var pe = new MemoryStream();
        var manifest = resources?.Select(r => new ResourceDescription(r.Name, () => new MemoryStream(r.Data), true));
        var emit = compilation.Emit(pe, manifestResources: manifest);
        var worst = warningsAsErrors ? DiagnosticSeverity.Warning : DiagnosticSeverity.Error;
        var problems = emit.Diagnostics.Where(d => d.Severity >= worst).Take(20).ToList();
        if (!emit.Success || problems.Count > 0)
            throw new InvalidOperationException("the generated code does not compile cleanly:\n" + string.Join("\n", problems));
        pe.Position = 0;
        var context = new AssemblyLoadContext(assemblyName, isCollectible: true);
        return new RoslynCompiler(context, context.LoadFromStream(pe));
    }

    /// <summary>An instance of a generated class, loaded with its weight file, as its Run method.</summary>
    public RunBatch Instantiate(string fullName, GeneratedModel model) => Instantiate(fullName, model.Weights);

    /// <summary>An instance of a generated class, loaded from the given weight file bytes, as its Run method.</summary>
    public RunBatch Instantiate(string fullName, byte[] weights)
    {
        var type = Assembly.GetType(fullName, throwOnError: true)!;
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
        var run = type.GetMethod("Run", [typeof(ReadOnlySpan<float>), typeof(Span<float>), typeof(int)])
            ?? throw new InvalidOperationException($"{fullName} has no Run(ReadOnlySpan<float>, Span<float>, int).");
        return (RunBatch)Delegate.CreateDelegate(typeof(RunBatch), instance, run);
    }

    /// <summary>Lets the assembly go once nothing refers to its types or delegates any more.</summary>
    public void Unload() => _context.Unload();
}
