using System.CommandLine;
using System.Globalization;
using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Pruning;
using Scalpel.Pruning.Methods;
using Scalpel.Pruning.Targets;

namespace Scalpel.Tool;

public static class Program
{
    public static int Main(string[] args)
    {
        s_cancelReported = 0;
        var parsed = BuildRoot().Parse(args);
        if (parsed.Errors.Count == 0)
        {
            // Ctrl+C and SIGTERM cancel the work; if it does not stop within the grace period, the process exits
            // anyway, but only while no outputs are being moved in (the commit lock), and says it was cancelled.
            using var cancel = new CancellationTokenSource();
            void OnSignal(System.Runtime.InteropServices.PosixSignalContext context)
            {
                context.Cancel = true;
                cancel.Cancel();
                new Thread(() =>
                {
                    Thread.Sleep(CancelGracePeriod);
                    lock (ModelCompiler.CommitLock)
                    {
                        ReportCancelled();
                        Environment.Exit(130);
                    }
                }) { IsBackground = true }.Start();
            }
            using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, OnSignal);
            using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, OnSignal);
            return parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }, cancel.Token).GetAwaiter().GetResult();
        }
        foreach (var error in parsed.Errors) Console.Error.WriteLine(Diagnostic.Error(ErrorCode.Option, error.Message));
        Console.Error.WriteLine("Run 'dotnet scalpel --help' for the commands and their options.");
        return 1;
    }

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("Scalpel.Build: hardware-aware pruning of ONNX models into generated C# inference code.");
        root.Subcommands.Add(CompileCommand());
        root.Subcommands.Add(InspectCommand());
        root.Subcommands.Add(PruneCommand());
        root.Subcommands.Add(ProfileCommand());
        return root;
    }

    private static Argument<FileInfo> ModelArgument() => new("model") { Description = "The ONNX model file." };

    private static Command CompileCommand()
    {
        var model = ModelArgument();
        var (target, outDir, ns, cls) = OutputOptions();
        var maxBytes = MaxModelBytesOption();
        var command = new Command("compile", "Generate C# inference code and its weight file for an (unpruned) model.") { model, target, outDir, ns, cls, maxBytes };
        command.SetAction(result => Run(() =>
        {
            var path = result.GetValue(model)!.FullName;
            var className = result.GetValue(cls) ?? ClassNameFrom(path);
            var t = TargetProfile.Resolve(result.GetValue(target)!).CodeTarget;
            var limit = result.GetValue(maxBytes);
            if (OptionSpecs.MaxModelBytes.Check(limit) is { } bad) throw new ScalpelException(ErrorCode.Option, bad);
            var compiled = ModelCompiler.Compile(path, t, result.GetValue(outDir)!.FullName, result.GetValue(ns)!, className, limit);
            Console.WriteLine($"{Path.GetFileName(path)}: {compiled.Model.Layers.Count} layers, target {t.Name} (Vector{t.SimdBits}{(t.Fma ? ", FMA" : "")})");
            Console.WriteLine($"  wrote {compiled.SourcePath} ({compiled.Code.Source.Length:N0} chars)");
            Console.WriteLine($"  wrote {compiled.WeightsPath} ({compiled.Code.Weights.Length:N0} bytes)");
        }));
        return command;
    }

    private static Option<long> MaxModelBytesOption() => From(OptionSpecs.MaxModelBytes, long.Parse);

    private static (Option<string> Target, Option<DirectoryInfo> Out, Option<string> Namespace, Option<string?> Class) OutputOptions()
    {
        var outDir = From(OptionSpecs.Out, v => new DirectoryInfo(v));
        outDir.Required = true;
        return (From(OptionSpecs.Target, v => v), outDir, From(OptionSpecs.Namespace, v => v), From<string?>(OptionSpecs.Class, v => v));
    }

    /// <summary>
    /// A command-line option as its OptionSpec describes it: name, help, default, and the spec's parsing, so a
    /// bad value reads as it does for the ScalpelModel metadata. Numbers' ranges are checked in PruneOptions.Validate.
    /// </summary>
    private static Option<T> From<T>(OptionSpec spec, Func<string, T> convert)
    {
        var option = new Option<T>(spec.Option!) { Description = spec.Help };
        if (spec.Default is { } value) option.DefaultValueFactory = _ => convert(value);
        if (spec.Choices.Count > 0) option.HelpName = string.Join("|", spec.Choices);
        if (spec.Kind is OptionKind.Names or OptionKind.NamedValues) option.AllowMultipleArgumentsPerToken = true;
        if (spec.Kind is OptionKind.Number or OptionKind.WholeNumber or OptionKind.Choice or OptionKind.Boolean)
            option.CustomParser = result =>
            {
                if (result.Tokens.Count == 0 && spec.Kind == OptionKind.Boolean) return convert("true"); // a bare switch
                string token = string.Join(" ", result.Tokens.Select(t => t.Value));
                if (spec.Parse(token, spec.Option, out var parsed, range: false) is { } error)
                {
                    result.AddError(error);
                    return default!;
                }
                try
                {
                    return convert(parsed);
                }
                catch (OverflowException)
                {
                    result.AddError(spec.Problem(token)); // a whole number too large for the option's type
                    return default!;
                }
            };
        return option;
    }

    private static T ParseEnum<T>(string value) where T : struct, Enum => Enum.Parse<T>(value, ignoreCase: true);

    private static double Double(string value) => double.Parse(value, CultureInfo.InvariantCulture);

    private static Command PruneCommand()
    {
        var model = ModelArgument();
        var (target, outDir, ns, cls) = OutputOptions();
        var method = From(OptionSpecs.Method, ParseEnum<Method>);
        var calibration = From<FileInfo?>(OptionSpecs.Calibration, v => new FileInfo(v));
        var validation = From<FileInfo?>(OptionSpecs.Validation, v => new FileInfo(v));
        var labels = From<FileInfo?>(OptionSpecs.Labels, v => new FileInfo(v));
        var maxDrop = From(OptionSpecs.MaxAccuracyDrop, Double);
        var minAgreement = From(OptionSpecs.MinAgreement, Double);
        var criterion = From<Criterion?>(OptionSpecs.Criterion, v => ParseEnum<Criterion>(v));
        var keepDense = From(OptionSpecs.KeepDense, v => new[] { v });
        var sparsity = From(OptionSpecs.Sparsity, v => new[] { v });
        var technique = From(OptionSpecs.Technique, v => new[] { v });
        var train = From<FileInfo?>(OptionSpecs.Train, v => new FileInfo(v));
        var trainLabels = From<FileInfo?>(OptionSpecs.TrainLabels, v => new FileInfo(v));
        var epochs = From(OptionSpecs.Epochs, int.Parse);
        var steps = From(OptionSpecs.RetrainSteps, int.Parse);
        var learningRate = From(OptionSpecs.LearningRate, v => (float)Double(v));
        var distillation = From(OptionSpecs.Distillation, v => (float)Double(v));
        var nodeSelection = From(OptionSpecs.NodeSelection, ParseEnum<NodeSelection>);
        var gatePenalty = From(OptionSpecs.GatePenalty, v => (float)Double(v));
        var maxBytes = MaxModelBytesOption();
        var measure = From(OptionSpecs.Measure, bool.Parse);
        var command = new Command("prune", "Prune a model for a hardware target and generate its C# inference code, pruned ONNX model and report.")
        {
            model, target, outDir, ns, cls, method, calibration, validation, labels, maxDrop, minAgreement, criterion, keepDense, sparsity, technique,
            train, trainLabels, epochs, steps, learningRate, distillation, nodeSelection, gatePenalty, measure, maxBytes,
        };
        command.SetAction((result, cancellation) => Task.FromResult(Run(() =>
        {
            var path = result.GetValue(model)!.FullName;
            var className = result.GetValue(cls) ?? ClassNameFrom(path);
            var overrides = new Dictionary<string, LayerOverride>(StringComparer.Ordinal);
            LayerOverride Get(string name) => overrides.GetValueOrDefault(name) ?? new LayerOverride();
            // Lists separated by ';' (as the ScalpelModel metadata are) or ',', or the option repeated; NAME=VALUE entries checked as the metadata are.
            IEnumerable<(string Name, string Value)> List(Option<string[]> option, OptionSpec spec) => OptionSpec.Entries(result.GetValue(option) ?? []).Select(entry =>
                spec.Parse(entry, null, out _) is { } error ? throw new ScalpelException(ErrorCode.Option, error)
                    : spec.Kind == OptionKind.NamedValues ? (entry[..entry.IndexOf('=')], entry[(entry.IndexOf('=') + 1)..]) : (entry, ""));
            foreach (var (name, _) in List(keepDense, OptionSpecs.KeepDense)) overrides[name] = Get(name) with { KeepDense = true };
            foreach (var (name, value) in List(sparsity, OptionSpecs.Sparsity)) overrides[name] = Get(name) with { Sparsity = Double(value) };
            foreach (var (name, value) in List(technique, OptionSpecs.Technique)) overrides[name] = Get(name) with { Technique = ParseEnum<Technique>(value) };
            var options = new PruneOptions
            {
                ModelPath = path, Target = TargetProfile.Resolve(result.GetValue(target)!), Namespace = result.GetValue(ns)!, ClassName = className,
                Method = result.GetValue(method), CalibrationData = result.GetValue(calibration)?.FullName,
                ValidationData = result.GetValue(validation)?.FullName, ValidationLabels = result.GetValue(labels)?.FullName,
                MaxAccuracyDrop = result.GetValue(maxDrop), MinAgreement = result.GetValue(minAgreement), Criterion = result.GetValue(criterion),
                Overrides = overrides, MeasureOnHost = result.GetValue(measure), Progress = new ConsoleProgress(), Cancellation = cancellation,
                TrainingData = result.GetValue(train)?.FullName, TrainingLabels = result.GetValue(trainLabels)?.FullName,
                Retraining = new RetrainOptions
                {
                    EpochsPerStep = result.GetValue(epochs), MaxSteps = result.GetValue(steps), NodeSelection = result.GetValue(nodeSelection),
                    GatePenalty = result.GetValue(gatePenalty), LearningRate = result.GetValue(learningRate), Distillation = result.GetValue(distillation),
                },
                MaxModelBytes = result.GetValue(maxBytes),
            };
            var pruned = Pipeline.Run(options);
            foreach (var w in pruned.Report.Warnings) Console.Error.WriteLine(Diagnostic.Warning(w.Code, w.Message));
            foreach (var file in Pipeline.Write(pruned, result.GetValue(outDir)!.FullName, className, cancellation))
                Console.WriteLine($"  wrote {file}");
            Console.WriteLine("report: " + Path.Combine(result.GetValue(outDir)!.FullName, className + ".report.md"));
        })));
        return command;
    }

    private static Command ProfileCommand()
    {
        var outFile = new Option<FileInfo>("--out") { Description = "The target profile .json file to write.", Required = true };
        var target = new Option<string>("--target") { Description = $"Base profile to copy (vector width, group width, caches): {string.Join(", ", TargetProfile.BuiltInNames)}, or a profile .json file.", DefaultValueFactory = _ => "host" };
        var name = new Option<string>("--name") { Description = "Name of the written profile.", DefaultValueFactory = _ => "host-profiled" };
        var quick = new Option<bool>("--quick") { Description = "Fewer, shorter timing rounds: quicker, noisier." };
        var command = new Command("profile", "Time the generated dense, CSR, grouped-CSR and output-grouped kernels on this machine and write a target profile with the measured crossover sparsities.")
        {
            outFile, target, name, quick,
        };
        command.SetAction((result, cancellation) => Task.FromResult(Run(() =>
        {
            var path = result.GetValue(outFile)!.FullName;
            var profiled = Scalpel.Pruning.Profiling.KernelProfiler.Run(new Scalpel.Pruning.Profiling.ProfileOptions
            {
                Base = TargetProfile.Resolve(result.GetValue(target)!), Name = result.GetValue(name)!, Quick = result.GetValue(quick),
                Progress = new ConsoleProgress(), Cancellation = cancellation,
            });
            Scalpel.Pruning.Profiling.KernelProfiler.Write(profiled.Profile, path);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  wrote {path} ({profiled.Elapsed.TotalSeconds:0} s)"));
        })));
        return command;
    }

    /// <summary>
    /// Progress lines straight to the console, in order (Progress&lt;T&gt; would post them to the thread pool).
    /// Phase lines (not indented) start with the time since the command began, so a long run shows its pace.
    /// </summary>
    private sealed class ConsoleProgress : IProgress<string>
    {
        private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();

        public void Report(string value) =>
            Console.WriteLine(value.StartsWith(' ') ? value : string.Create(CultureInfo.InvariantCulture, $"[{_clock.Elapsed.TotalSeconds:0} s] {value}"));
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
        // Names come from the model: no line breaks or terminal escape sequences reach the console.
        sb.AppendLine(inv, $"{Diagnostic.OneLine(name)}: opset {graph.Opset}, input '{Diagnostic.OneLine(graph.InputName)}' {Shape.Format(graph.InputShape, sym)}, output '{Diagnostic.OneLine(graph.OutputName)}' {Shape.Format(graph.OutputShape, sym)}");
        sb.AppendLine(inv, $"{"#",3}  {"op",-18} {"name",-28} {"input -> output",-36} {"params",10} {"MACs",12} {"bytes",10}  detail");
        long totalParams = 0, totalMacs = 0;
        for (int i = 0; i < graph.Layers.Count; i++)
        {
            var l = graph.Layers[i];
            var shapes = string.Join(",", l.Inputs.Select(x => Shape.Format(graph.Shapes[x], sym))) + " -> " + Shape.Format(l.OutputShape, sym);
            sb.AppendLine(inv, $"{i,3}  {l.Kind,-18} {Trim(Diagnostic.OneLine(l.Name), 28),-28} {shapes,-36} {l.Parameters,10:N0} {l.Macs,12:N0} {l.Parameters * 4,10:N0}  {l.Describe()}");
            totalParams += l.Parameters;
            totalMacs += l.Macs;
        }
        sb.AppendLine(inv, $"total: {totalParams:N0} parameters, {totalMacs:N0} MACs per sample, {totalParams * 4:N0} bytes of float32 weights");
        return sb.ToString();
    }

    private static string Trim(string s, int n) => s.Length <= n ? s : "…" + s[^(n - 1)..];

    public static string ClassNameFrom(string path) => ModelNames.ClassNameFrom(path);

    private static int s_cancelReported;

    /// <summary>How long cancelled work may take to stop by itself before the process exits.</summary>
    private static readonly TimeSpan CancelGracePeriod = TimeSpan.FromSeconds(2);

    private static void ReportCancelled()
    {
        if (Interlocked.Exchange(ref s_cancelReported, 1) == 0)
            Console.Error.WriteLine(Diagnostic.Error(ErrorCode.Cancelled, "cancelled; the output folder was left as it was."));
    }

    /// <summary>
    /// Runs a command body. A failure becomes one diagnostic line on stderr ("error SCALPEL1005: ...", the
    /// form MSBuild and editors parse) and exit code 1; a bug adds its stack trace after that line.
    /// </summary>
    private static int Run(Action body)
    {
        try
        {
            body();
            return 0;
        }
        catch (ScalpelException e)
        {
            Console.Error.WriteLine(Diagnostic.Error(e.Code, e.Message));
            return 1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine(Diagnostic.Error(ErrorCode.FileAccess, e.Message));
            return 1;
        }
        catch (OperationCanceledException)
        {
            ReportCancelled();
            return 130;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine(Diagnostic.Error(ErrorCode.Internal, $"internal error ({e.GetType().Name}: {e.Message}); please report it with the model."));
            Console.Error.WriteLine(e);
            return 1;
        }
    }
}
