using System.CommandLine;
using System.Globalization;
using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;

namespace Scalpel.Tool;

public static class Program
{
    public static int Main(string[] args) => BuildRoot().Parse(args).Invoke();

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("Scalpel.Build: hardware-aware pruning of ONNX models into generated C# inference code.");
        root.Subcommands.Add(CompileCommand());
        root.Subcommands.Add(InspectCommand());
        return root;
    }

    private static Argument<FileInfo> ModelArgument() => new("model") { Description = "The ONNX model file." };

    private static Command CompileCommand()
    {
        var model = ModelArgument();
        var target = new Option<string>("--target") { Description = $"Hardware target: {string.Join(", ", CodeTarget.BuiltInNames)}.", DefaultValueFactory = _ => "host" };
        var outDir = new Option<DirectoryInfo>("--out") { Description = "Folder for CLASS.g.cs and CLASS.bin.", Required = true };
        var ns = new Option<string>("--namespace") { Description = "Namespace of the generated class.", DefaultValueFactory = _ => "Scalpel.Generated" };
        var cls = new Option<string?>("--class") { Description = "Generated class name (default: from the model file name)." };
        var command = new Command("compile", "Generate C# inference code and its weight file for an (unpruned) model.") { model, target, outDir, ns, cls };
        command.SetAction(result => Run(() =>
        {
            var path = result.GetValue(model)!.FullName;
            var className = result.GetValue(cls) ?? ClassNameFrom(path);
            var compiled = ModelCompiler.Compile(path, CodeTarget.Resolve(result.GetValue(target)!), result.GetValue(outDir)!.FullName, result.GetValue(ns)!, className);
            var t = CodeTarget.Resolve(result.GetValue(target)!);
            Console.WriteLine($"{Path.GetFileName(path)}: {compiled.Model.Layers.Count} layers, target {t.Name} (Vector{t.SimdBits}{(t.Fma ? ", FMA" : "")})");
            Console.WriteLine($"  wrote {compiled.SourcePath} ({compiled.Code.Source.Length:N0} chars)");
            Console.WriteLine($"  wrote {compiled.WeightsPath} ({compiled.Code.Weights.Length:N0} bytes)");
        }));
        return command;
    }

    private static Command InspectCommand()
    {
        var model = ModelArgument();
        var command = new Command("inspect", "Print each layer: operator, shapes, parameters, MACs and bytes.") { model };
        command.SetAction(result => Run(() =>
        {
            var path = result.GetValue(model)!.FullName;
            var graph = GraphAnalyzer.Analyze(OnnxModel.Load(path));
            Console.Write(Inspect(graph, Path.GetFileName(path)));
        }));
        return command;
    }

    public static string Inspect(ModelGraph graph, string name)
    {
        var sb = new System.Text.StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        bool sym = graph.SymbolicBatch;
        sb.AppendLine(inv, $"{name}: opset {graph.Opset}, input '{graph.InputName}' {Shape.Format(graph.InputShape, sym)}, output '{graph.OutputName}' {Shape.Format(graph.OutputShape, sym)}");
        sb.AppendLine(inv, $"{"#",3}  {"op",-18} {"name",-28} {"input -> output",-36} {"params",10} {"MACs",12} {"bytes",10}  detail");
        long totalParams = 0, totalMacs = 0;
        for (int i = 0; i < graph.Layers.Count; i++)
        {
            var l = graph.Layers[i];
            var shapes = string.Join(",", l.Inputs.Select(x => Shape.Format(graph.Shapes[x], sym))) + " -> " + Shape.Format(l.OutputShape, sym);
            sb.AppendLine(inv, $"{i,3}  {l.Kind,-18} {Trim(l.Name, 28),-28} {shapes,-36} {l.Parameters,10:N0} {l.Macs,12:N0} {l.Parameters * 4,10:N0}  {l.Describe()}");
            totalParams += l.Parameters;
            totalMacs += l.Macs;
        }
        sb.AppendLine(inv, $"total: {totalParams:N0} parameters, {totalMacs:N0} MACs per sample, {totalParams * 4:N0} bytes of float32 weights");
        return sb.ToString();
    }

    private static string Trim(string s, int n) => s.Length <= n ? s : "…" + s[^(n - 1)..];

    public static string ClassNameFrom(string path)
    {
        var stem = Path.GetFileNameWithoutExtension(path);
        var parts = stem.Split(['-', '_', '.', ' '], StringSplitOptions.RemoveEmptyEntries);
        var name = string.Concat(parts.Select(p => char.ToUpperInvariant(p[0]) + p[1..]));
        name = new string(name.Where(char.IsLetterOrDigit).ToArray());
        return name.Length == 0 || char.IsDigit(name[0]) ? "Model" + name : name;
    }

    /// <summary>Runs a command body: user errors become one line on stderr and exit code 1.</summary>
    private static int Run(Action body)
    {
        try
        {
            body();
            return 0;
        }
        catch (Exception e) when (e is ScalpelException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }
}
