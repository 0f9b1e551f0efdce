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
            var limit = result.GetValue(maxBytes) is > 0 and var b ? b : throw new ScalpelException(ErrorCode.Option, "--max-model-bytes: expected a positive number of bytes.");
            var compiled = ModelCompiler.Compile(path, t, result.GetValue(outDir)!.FullName, result.GetValue(ns)!, className, limit);
            Console.WriteLine($"{Path.GetFileName(path)}: {compiled.Model.Layers.Count} layers, target {t.Name} (Vector{t.SimdBits}{(t.Fma ? ", FMA" : "")})");
            Console.WriteLine($"  wrote {compiled.SourcePath} ({compiled.Code.Source.Length:N0} chars)");
            Console.WriteLine($"  wrote {compiled.WeightsPath} ({compiled.Code.Weights.Length:N0} bytes)");
        }));
        return command;
    }

    private static Option<long> MaxModelBytesOption() => new("--max-model-bytes")
    {
        Description = "Largest total of tensor bytes a model may declare (a guard against hostile files).", DefaultValueFactory = _ => OnnxModel.DefaultMaxTensorBytes,
    };

    private static (Option<string> Target, Option<DirectoryInfo> Out, Option<string> Namespace, Option<string?> Class) OutputOptions() => (
        new Option<string>("--target") { Description = $"Hardware target: {string.Join(", ", TargetProfile.BuiltInNames)}, or a profile .json file.", DefaultValueFactory = _ => "host" },
        new Option<DirectoryInfo>("--out") { Description = "Output folder.", Required = true },
        new Option<string>("--namespace") { Description = "Namespace of the generated class.", DefaultValueFactory = _ => "Scalpel.Generated" },
        new Option<string?>("--class") { Description = "Generated class name (default: from the model file name)." });

    private static Command PruneCommand()
    {
        var model = ModelArgument();
        var (target, outDir, ns, cls) = OutputOptions();
        var method = new Option<Method>("--method") { Description = "scalpel (per the target's parallelism), traditional (unstructured, CSR: the paper's baseline) or dense.", DefaultValueFactory = _ => Method.Scalpel, HelpName = "scalpel|traditional|dense", CustomParser = r => Choice<Method>(r, "--method") ?? default };
        var calibration = new Option<FileInfo?>("--calibration") { Description = "Calibration inputs, .npy float32 [N, ...input shape]." };
        var validation = new Option<FileInfo?>("--validation") { Description = "Validation inputs, .npy float32 [N, ...input shape]." };
        var labels = new Option<FileInfo?>("--labels") { Description = "Validation labels, .npy int32/int64 [N]." };
        var maxDrop = new Option<double>("--max-accuracy-drop") { Description = "Largest accepted validation accuracy drop, in percentage points.", DefaultValueFactory = _ => 0.5 };
        var minAgreement = new Option<double>("--min-agreement") { Description = "Without labels: smallest accepted top-1 agreement with the original model.", DefaultValueFactory = _ => 0.99 };
        var criterion = new Option<Criterion?>("--criterion") { Description = "Group scoring: dataaware (default with calibration data) or magnitude.", HelpName = "dataaware|magnitude", CustomParser = r => Choice<Criterion>(r, "--criterion") };
        var keepDense = new Option<string[]>("--keep-dense") { Description = "Layer names or kinds (fc, conv) to leave unpruned, e.g. fc or \"/1/Gemm;/3/Gemm\".", AllowMultipleArgumentsPerToken = true };
        var sparsity = new Option<string[]>("--sparsity") { Description = "Fixed sparsity per layer name or kind, e.g. fc=0.8 or \"fc=0.8;/1/Gemm=0.9\" (applied as asked, without the search; a warning says when the accuracy guard would have refused it).", AllowMultipleArgumentsPerToken = true };
        var technique = new Option<string[]>("--technique") { Description = "Technique per layer name or kind instead of the target's choice (weight, csr or node), e.g. conv=node or \"conv=node;fc=weight;/1/Gemm=csr\".", AllowMultipleArgumentsPerToken = true };
        var train = new Option<FileInfo?>("--train") { Description = "Training inputs, .npy float32 [N, ...input shape]: prune and retrain in steps (masked fine-tuning)." };
        var trainLabels = new Option<FileInfo?>("--train-labels") { Description = "Training labels, .npy int32/int64 [N]." };
        var defaults = new RetrainOptions();
        var epochs = new Option<int>("--epochs") { Description = "Retraining epochs after each pruning step.", DefaultValueFactory = _ => defaults.EpochsPerStep };
        var steps = new Option<int>("--retrain-steps") { Description = "Pruning steps of rising sparsity at most, each followed by retraining.", DefaultValueFactory = _ => defaults.MaxSteps };
        var learningRate = new Option<float>("--learning-rate") { Description = "Peak learning rate of retraining (Adam, cosine schedule).", DefaultValueFactory = _ => defaults.LearningRate };
        var distillation = new Option<float>("--distillation") { Description = "Weight of distillation from the original model's logits during retraining, 0 to 1.", DefaultValueFactory = _ => defaults.Distillation };
        var nodeSelection = new Option<NodeSelection>("--node-selection") { Description = "With --train: which channels node steps remove: filter (smallest filters first) or gates (learned node gates with an L1 penalty, the paper's).", DefaultValueFactory = _ => defaults.NodeSelection, HelpName = "filter|gates", CustomParser = r => Choice<NodeSelection>(r, "--node-selection") ?? default };
        var gatePenalty = new Option<float>("--gate-penalty") { Description = "With --node-selection gates: weight of the L1 penalty on the gates.", DefaultValueFactory = _ => defaults.GatePenalty };
        var maxBytes = MaxModelBytesOption();
        var measure = new Option<bool>("--measure") { Description = "Time each layer's generated kernel on this machine for the report (when the target's vectors run in hardware here).", DefaultValueFactory = _ => true };
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
            // Lists separated by ';' (as the ScalpelModel metadata are) or ',', or the option repeated.
            IEnumerable<string> List(Option<string[]> option) => (result.GetValue(option) ?? []).SelectMany(v => v.Split([';', ','], StringSplitOptions.RemoveEmptyEntries)).Select(v => v.Trim()).Where(v => v.Length > 0);
            foreach (var name in List(keepDense)) overrides[name] = Get(name) with { KeepDense = true };
            foreach (var spec in List(sparsity))
            {
                var parts = spec.Split('=', 2);
                if (parts.Length != 2 || !double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var s))
                    throw new ScalpelException(ErrorCode.Option, $"--sparsity '{spec}': expected NAME=FRACTION with FRACTION in [0, 1).");
                overrides[parts[0]] = Get(parts[0]) with { Sparsity = s };
            }
            foreach (var spec in List(technique))
            {
                var parts = spec.Split('=', 2);
                if (parts.Length != 2 || !Enum.TryParse<Technique>(parts[1], ignoreCase: true, out var t))
                    throw new ScalpelException(ErrorCode.Option, $"--technique '{spec}': expected NAME=weight, NAME=csr or NAME=node.{(parts.Length == 2 ? ClosestName.Suggestion(parts[1], ["weight", "csr", "node"]) : "")}");
                overrides[parts[0]] = Get(parts[0]) with { Technique = t };
            }
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
                    EpochsPerStep = result.GetValue(epochs), MaxSteps = Math.Max(0, result.GetValue(steps)), NodeSelection = result.GetValue(nodeSelection),
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

    /// <summary>An enum option's value, any case; otherwise an error that lists the values in lower case and names the closest.</summary>
    private static T? Choice<T>(System.CommandLine.Parsing.ArgumentResult result, string option) where T : struct, Enum
    {
        string token = result.Tokens.Count == 1 ? result.Tokens[0].Value : string.Join(" ", result.Tokens.Select(t => t.Value));
        var names = Enum.GetNames<T>().Select(n => n.ToLowerInvariant()).ToArray();
        if (names.Contains(token.ToLowerInvariant())) return Enum.Parse<T>(token, ignoreCase: true);
        result.AddError($"{option}: '{token}' is not one of: {string.Join(", ", names)}.{ClosestName.Suggestion(token, names)}");
        return null;
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
