using System.Diagnostics;
using System.Globalization;
using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;
using Scalpel.Pruning.Calibration;
using Scalpel.Pruning.Data;
using Scalpel.Pruning.Methods;
using Scalpel.Pruning.Targets;

namespace Scalpel.Pruning;

public sealed record PruneResult(ModelGraph Model, GeneratedModel Code, ModelProto PrunedOnnx, PruneReport Report);

/// <summary>
/// The one pipeline behind the CLI and the MSBuild task: load -> analyse -> plan -> calibrate -> prune
/// (greedy search within the accuracy budget) -> verify -> emit.
/// </summary>
public static partial class Pipeline
{
    /// <summary>Sparsity levels the search steps through.</summary>
    public static readonly double[] Levels = [0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.92, 0.95, 0.97];

    /// <summary>Sparsity used without any data to check accuracy against: conservative.</summary>
    public const double DataFreeSparsity = 0.5;

    private sealed class LayerPlan
    {
        public required Layer Layer { get; init; }
        public int Rows => Layer is DenseLayer d ? d.N : ((ConvLayer)Layer).M;
        public int Cols => Weight.Length / Rows;
        public float[] Weight => Layer is DenseLayer d ? d.Weight : ((ConvLayer)Layer).Weight;
        public string Input => Layer.Inputs[0];

        /// <summary>The rows the layer's weights multiply: the input itself, or im2col patches for a conv.</summary>
        public float[] Features(float[] input) => Layer is ConvLayer c ? Im2Col.Patches(input, c, ConsumerRefit.PositionsPerSample) : input;

        /// <summary>
        /// The statistics of the layer's features on <paramref name="samples"/> inputs (against the original model's
        /// inputs for the cross term, or <paramref name="current"/> itself), 128 samples of features at a time: a
        /// conv's im2col patches never exist for the whole calibration set at once.
        /// </summary>
        public LayerStatistics Statistics(float[] current, float[] original, int samples)
        {
            bool cross = !ReferenceEquals(current, original);
            var sum = new LayerStatistics.Accumulator(Cols, cross);
            int size = current.Length / samples;
            for (int s = 0; s < samples; s += 128)
            {
                int n = Math.Min(128, samples - s);
                var x = Features(current.AsSpan(s * size, n * size).ToArray());
                sum.Add(x, cross ? Features(original.AsSpan(s * size, n * size).ToArray()) : x);
            }
            return sum.Result();
        }

        public void Apply(float[] weight)
        {
            switch (Layer)
            {
                case DenseLayer d: (d.Weight, d.Format, d.GroupWidth) = (weight, Format, GroupWidth); break;
                case ConvLayer c: (c.Weight, c.Format, c.GroupWidth) = (weight, Format, GroupWidth); break;
            }
        }
        public required string Technique { get; init; }
        public required WeightFormat Format { get; init; }
        public required int GroupWidth { get; init; }
        public required double Crossover { get; init; }
        public required double[] Candidates { get; init; }
        /// <summary>A sparsity the user fixed: applied even when the accuracy guard would refuse it.</summary>
        public bool Fixed { get; init; }
        public bool AlongOutputs => Format == WeightFormat.OutputGrouped;
        /// <summary>Set when the sparse kernel measured slower than the dense one for this layer here: it runs dense.</summary>
        public string? SlowerThanDense { get; set; }
        public string? Note { get; init; }
        public LayerStatistics? Stats { get; set; }
        public int Level { get; set; } = -1; // index into Candidates; -1 = unpruned
        private Dictionary<int, WeightPruning.Result> Cache { get; } = [];

        /// <summary>The layer pruned to candidate <paramref name="level"/> and refit, computed once per level.</summary>
        public WeightPruning.Result Pruned(int level, Criterion criterion)
        {
            if (!Cache.TryGetValue(level, out var r))
                Cache[level] = r = WeightPruning.Prune(Weight, Rows, Cols, GroupWidth, Candidates[level], criterion, Stats, AlongOutputs);
            return r;
        }
        public double Sparsity => Level < 0 ? 0 : Candidates[Level];

        /// <summary>Time relative to the dense kernel, from the crossover (sparse time falls linearly with kept weights).</summary>
        public double RelativeTime(int level) => level < 0 || Format == WeightFormat.Dense ? 1 : (1 - Candidates[level]) / Math.Max(1e-6, 1 - Crossover);
    }

    public static PruneResult Run(PruneOptions o)
    {
        try
        {
            return RunChecked(o);
        }
        catch (Microsoft.ML.OnnxRuntime.OnnxRuntimeException e)
        {
            // A model that passed Scalpel.Build's own checks can still be one ONNX Runtime refuses to load or run.
            throw new ScalpelException(ErrorCode.InvalidModel, $"{o.ModelPath}: ONNX Runtime cannot run the model: {e.Message.ReplaceLineEndings(" ")}", e);
        }
    }

    private static PruneResult RunChecked(PruneOptions o)
    {
        o.Validate();
        var say = o.Progress ?? new Progress<string>(_ => { });
        var original = OnnxModel.Load(o.ModelPath, o.MaxModelBytes);
        if (o.TrainingData is not null)
        {
            // Retraining updates every layer's own initializers: fold BatchNorms into them first (same function).
            original = new OnnxModel(BatchNormFolding.Apply(original.Proto), original.BaseDirectory, original.Source);
        }
        var originalModel = GraphAnalyzer.Analyze(original);
        o.ValidateLayerNames(originalModel.Layers.Where(l => l is DenseLayer or ConvLayer).Select(l => l.Name).ToList());
        if (originalModel.BatchMode != BatchMode.PerSample)
            throw new UnsupportedModelException($"{o.ModelPath}: pruning needs a model whose first input dimension is the batch (symbolic or 1).");
        var sampleShape = originalModel.InputShape[1..];

        Dataset? calibration = o.CalibrationData is null ? null : Dataset.Load(o.CalibrationData, null, sampleShape, maxSamples: o.MaxCalibrationSamples, inputsOption: "--calibration");
        Dataset? validation = o.ValidationData is null ? null : Dataset.Load(o.ValidationData, o.ValidationLabels, sampleShape, originalModel.OutputSize, inputsOption: "--validation", labelsOption: "--labels");
        Dataset? training = null;
        if (o.TrainingData is not null)
        {
            training = Dataset.Load(o.TrainingData, o.TrainingLabels!, sampleShape, originalModel.OutputSize, o.Retraining.MaxSamples, "--train", "--train-labels");
        }
        if (validation is null && calibration is not null && calibration.Count >= 8)
        {
            // Hold out a quarter of the calibration set to check agreement on inputs the refit has not seen.
            int held = calibration.Count / 4;
            validation = new Dataset
            {
                Inputs = calibration.Inputs.AsSpan((calibration.Count - held) * calibration.SampleSize).ToArray(), Count = held,
                SampleSize = calibration.SampleSize, Source = calibration.Source + " (held-out quarter)",
            };
            calibration = calibration.Take(calibration.Count - held);
        }
        if (training is not null && validation is null)
            throw new ScalpelException(ErrorCode.Option, $"{o.TrainingData}: retraining keeps only steps that stay within the accuracy budget, so it needs validation data (--validation), or at least 8 calibration samples to hold a quarter out.");
        var criterion = o.Criterion ?? (calibration is null ? Criterion.Magnitude : Criterion.DataAware);

        // Validation: the original model's accuracy (or its own top-1, which agreement is measured against).
        int[]? truth = null;
        double? before = null;
        if (validation is not null)
        {
            var top1 = Accuracy.Top1(Accuracy.Logits(original.Proto, validation), validation.Count);
            truth = validation.Labels ?? top1;
            before = Accuracy.Score(top1, truth);
            say.Report($"validation: {validation.Count} samples, original {(validation.Labels is null ? "agreement" : "accuracy")} {before:P2}");
        }
        double floor = validation?.Labels is not null ? before!.Value - o.MaxAccuracyDrop / 100 : o.MinAgreement;
        var search = new List<string>();

        // Node pruning first (it changes layer sizes); weight pruning then works on the smaller model with what is left of the budget.
        var nodes = NodePhase(original, originalModel, o, calibration, validation, truth, floor, search, say);
        var retrainer = training is null ? null : new Retrainer(original.Proto, training, validation!, truth!, floor, o, search, say);
        if (retrainer is not null) nodes = retrainer.Nodes(nodes, original, o);
        var onnx = nodes.Kept.Count == 0 ? original : new OnnxModel(nodes.Model, original.BaseDirectory, original.Source);
        var model = nodes.Kept.Count == 0 ? originalModel : GraphAnalyzer.Analyze(onnx);

        var plans = Plan(model, onnx.Proto, o);
        say.Report($"{Path.GetFileName(o.ModelPath)}: {model.Layers.Count} layers, {nodes.Kept.Count} node-pruned, {plans.Count(p => p.Candidates.Length > 0)} to weight-prune for target {o.Target.Name}");
        if (calibration is not null && plans.Any(p => p.Candidates.Length > 0))
        {
            // Calibration: second moments of each prunable layer's input.
            say.Report($"calibrating on {calibration.Count} samples ({calibration.Source})");
            using var runner = new OrtRunner(onnx.Proto, plans.Select(p => p.Input));
            var tensors = runner.Run(calibration);
            foreach (var p in plans.Where(p => p.Candidates.Length > 0))
            {
                o.Cancellation.ThrowIfCancellationRequested();
                p.Stats = p.Statistics(tensors[p.Input], tensors[p.Input], calibration.Count);
            }
        }

        var warnings = new List<ReportWarning>();
        if (validation is null)
        {
            foreach (var p in plans.Where(p => p.Candidates.Length > 0))
                p.Level = Array.FindLastIndex(p.Candidates, s => s <= Math.Max(DataFreeSparsity, p.Candidates[0]));
        }
        else
        {
            ApplyFixed(onnx.Proto, plans, criterion, validation, truth!, floor, o, search, warnings, say);
            Search(onnx.Proto, plans, criterion, validation, truth!, floor, o, search, say);
        }

        // Apply the chosen levels. The search refit each layer on the original model's inputs; refitting again in
        // layer order against the inputs the pruned earlier layers now produce (the cross term between layers, docs/pruning.md)
        // usually recovers accuracy, and is kept only when the validation score says so.
        var pruned = onnx.Proto.Clone();
        var chosen = plans.Where(p => p.Level >= 0).ToList();
        var weights = chosen.ToDictionary(p => p, p => p.Pruned(p.Level, criterion).Weight);
        foreach (var p in chosen) OnnxWriteback.Write(pruned, p.Layer, weights[p]);
        double? after = validation is null ? null : Accuracy.Evaluate(pruned, validation, truth!);
        if (calibration is not null && validation is not null && chosen.Count > 1)
        {
            var sequential = onnx.Proto.Clone();
            var refit = new Dictionary<LayerPlan, float[]>();
            using (var originalRunner = new OrtRunner(onnx.Proto, chosen.Select(p => p.Input)))
            {
                var originalInputs = originalRunner.Run(calibration);
                foreach (var p in chosen)
                {
                    o.Cancellation.ThrowIfCancellationRequested();
                    using var runner = new OrtRunner(sequential, [p.Input]);
                    var stats = p.Statistics(runner.Run(calibration)[p.Input], originalInputs[p.Input], calibration.Count);
                    refit[p] = WeightPruning.Prune(p.Weight, p.Rows, p.Cols, p.GroupWidth, p.Sparsity, criterion, stats, p.AlongOutputs).Weight;
                    OnnxWriteback.Write(sequential, p.Layer, refit[p]);
                }
            }
            double score = Accuracy.Evaluate(sequential, validation, truth!);
            say.Report(string.Create(CultureInfo.InvariantCulture, $"sequential refit: validation {score:P2} (independent refit {after:P2})"));
            if (score >= after)
            {
                (pruned, weights, after) = (sequential, refit, score);
                search.Add(string.Create(CultureInfo.InvariantCulture, $"sequential least-squares refit against the pruned inputs: validation {score:P2}"));
            }
        }
        foreach (var p in chosen) p.Apply(weights[p]);
        if (retrainer is not null)
        {
            retrainer.Weights(pruned, model, plans);
            after = Accuracy.Evaluate(pruned, validation!, truth!); // the exported model, checked by ONNX Runtime
        }
        if (o.MeasureOnHost && Profiling.LayerTimer.Accelerated(o.Target.CodeTarget) && chosen.Count > 0)
            KeepFasterKernels(model, chosen, o, say);
        var code = CSharpEmitter.Emit(model, new EmitOptions(o.Namespace, o.ClassName, o.Target.CodeTarget, Path.GetFileName(o.ModelPath)));
        var report = Report(o, originalModel, model, plans, nodes.Kept, criterion, calibration, validation, before, after, search) with { Retraining = retrainer?.Summary() };
        report.Warnings.AddRange(warnings);
        if (calibration is null && validation is null)
            report.Warnings.Add(new(ReportWarning.NoData, string.Create(CultureInfo.InvariantCulture,
                $"no calibration or validation data: pruned data-free (up to {DataFreeSparsity:P0} per layer, {criterion} criterion, no refit) and the accuracy was not checked. Give calibration and validation data.")));
        else if (o.Method != Method.Dense && report.PrunedBytes == report.DenseBytes && chosen.All(p => p.SlowerThanDense is null))
            report.Warnings.Add(new(ReportWarning.NothingPruned, "the accuracy budget allowed no pruning: the generated code is the dense model. A larger budget, more calibration data or retraining may help."));
        if (o.MeasureOnHost && Profiling.LayerTimer.Accelerated(o.Target.CodeTarget))
        {
            say.Report("timing each layer's generated kernel on this machine");
            foreach (var (name, time) in Profiling.LayerTimer.Measure(originalModel, model, o.Target.CodeTarget, o.Cancellation))
                if (report.Layers.FirstOrDefault(l => l.Name == name) is { } layer)
                    (layer.MeasuredMicroseconds, layer.MeasuredDenseMicroseconds) = (time.Pruned, time.Dense);
        }
        long peak = Process.GetCurrentProcess().PeakWorkingSet64;
        if (o.MeasureOnHost) report.PeakMemoryBytes = peak;
        say.Report(string.Create(CultureInfo.InvariantCulture, $"done: {report.SizeReduction:P1} smaller")
            + (after is null ? ", accuracy not checked" : string.Create(CultureInfo.InvariantCulture, $", validation {report.AccuracyMetric} {before:P2} -> {after:P2} ({100 * (after - before):+0.00;-0.00} points)"))
            + string.Create(CultureInfo.InvariantCulture, $"; FC and conv layers {report.PredictedSpeedup:0.00}x faster predicted")
            + (report.MeasuredSpeedup is { } measured ? string.Create(CultureInfo.InvariantCulture, $", {measured:0.00}x measured here") : ", not measured")
            + string.Create(CultureInfo.InvariantCulture, $"; peak memory {peak / (1024.0 * 1024):0} MB"));
        return new PruneResult(model, code, pruned, report);
    }

    /// <summary>
    /// Layers with a sparsity the user fixed (`--sparsity`) are pruned to it whatever the accuracy guard says; when
    /// the validation score with them falls below the floor (the guard would have refused them), a warning says so.
    /// </summary>
    private static void ApplyFixed(ModelProto original, List<LayerPlan> plans, Criterion criterion, Dataset validation, int[] truth,
        double floor, PruneOptions o, List<string> log, List<ReportWarning> warnings, IProgress<string> say)
    {
        var fixedPlans = plans.Where(p => p.Fixed && p.Candidates.Length > 0).ToList();
        if (fixedPlans.Count == 0) return;
        var proto = original.Clone();
        foreach (var p in fixedPlans)
        {
            o.Cancellation.ThrowIfCancellationRequested();
            p.Level = 0;
            OnnxWriteback.Write(proto, p.Layer, p.Pruned(0, criterion).Weight);
        }
        double score = Accuracy.Evaluate(proto, validation, truth);
        var names = string.Join(", ", fixedPlans.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Layer.Name} {p.Sparsity:P0}")));
        log.Add(string.Create(CultureInfo.InvariantCulture, $"fixed sparsity as asked: {names}, validation {score:P2}"));
        say.Report(string.Create(CultureInfo.InvariantCulture, $"fixed sparsity as asked: {names}: validation {score:P2}{(score >= floor ? "" : " (over budget)")}"));
        if (score < floor)
            warnings.Add(new(ReportWarning.FixedSparsityOverBudget, string.Create(CultureInfo.InvariantCulture,
                $"the fixed sparsity asked for ({names}) takes the validation score to {score:P2}, below the accuracy guard's floor {floor:P2}; applied as asked. Without --sparsity the search would have refused it.")));
    }

    /// <summary>
    /// Times each chosen layer's sparse kernel against the dense kernel of the same (pruned) layer on this machine and
    /// runs the dense kernel where the sparse one measured slower: the crossover is a model, the measurement decides.
    /// </summary>
    private static void KeepFasterKernels(ModelGraph model, List<LayerPlan> chosen, PruneOptions o, IProgress<string> say)
    {
        say.Report("timing each pruned layer's sparse kernel against the dense kernel on this machine");
        // A shared machine's bursts can make one measurement lie either way: each layer takes the majority of up to three.
        var votes = chosen.ToDictionary(p => p.Layer.Name, _ => (Slower: 0, Faster: 0));
        var last = new Dictionary<string, (double Pruned, double Dense)>();
        while (votes.Values.Any(v => v.Slower < 2 && v.Faster < 2))
        {
            var times = Profiling.LayerTimer.Measure(model, model, o.Target.CodeTarget, o.Cancellation);
            foreach (var name in votes.Keys.Where(n => votes[n].Slower < 2 && votes[n].Faster < 2).ToList())
            {
                var t = last[name] = times[name];
                votes[name] = t.Pruned > t.Dense ? (votes[name].Slower + 1, votes[name].Faster) : (votes[name].Slower, votes[name].Faster + 1);
            }
        }
        foreach (var p in chosen)
        {
            if (votes[p.Layer.Name].Slower < 2) continue;
            var t = last[p.Layer.Name];
            p.SlowerThanDense = string.Create(CultureInfo.InvariantCulture,
                $"its sparse kernel measured slower than the dense one here ({t.Pruned:0.00} µs vs {t.Dense:0.00} µs): runs dense, on the pruned weights");
            say.Report($"  {p.Layer.Name}: {p.SlowerThanDense}");
            switch (p.Layer)
            {
                case DenseLayer d: (d.Format, d.GroupWidth) = (WeightFormat.Dense, 1); break;
                case ConvLayer c: (c.Format, c.GroupWidth) = (WeightFormat.Dense, 1); break;
            }
        }
    }

    /// <summary>
    /// Greedy: each round tries one more sparsity step on every layer and takes, among the steps that keep the
    /// validation score above the floor, the one with the largest predicted time saving (Traditional: the largest
    /// size saving). Stops when no step fits the budget.
    /// </summary>
    private static void Search(ModelProto original, List<LayerPlan> plans, Criterion criterion, Dataset validation, int[] truth,
        double floor, PruneOptions o, List<string> log, IProgress<string> say)
    {
        var progress = new SearchProgress(say);
        while (true)
        {
            (LayerPlan Plan, double Score, double Gain)? best = null;
            foreach (var p in plans.Where(p => p.Level + 1 < p.Candidates.Length))
            {
                o.Cancellation.ThrowIfCancellationRequested();
                int next = p.Level + 1;
                var proto = original.Clone();
                foreach (var q in plans.Where(q => q.Level >= 0 || q == p))
                {
                    OnnxWriteback.Write(proto, q.Layer, q.Pruned(q == p ? next : q.Level, criterion).Weight);
                }
                double score = Accuracy.Evaluate(proto, validation, truth);
                // Scalpel ranks steps by predicted time saved, Traditional by weights removed; weights removed
                // also break ties (a step at the crossover saves no time yet but opens the next ones).
                double removed = p.Weight.Length * (p.Candidates[next] - p.Sparsity);
                double gain = o.Method == Method.Traditional ? removed : p.Layer.Macs * (p.RelativeTime(p.Level) - p.RelativeTime(next)) + 1e-3 * removed;
                say.Report(string.Create(CultureInfo.InvariantCulture, $"  try {p.Layer.Name} at {p.Candidates[next]:P0}: {score:P2}{(score >= floor ? "" : " (over budget)")}"));
                progress.Tried();
                if (score >= floor && gain > 0 && (best is null || gain > best.Value.Gain)) best = (p, score, gain);
            }
            if (best is not { } b) break;
            b.Plan.Level++;
            log.Add(string.Create(CultureInfo.InvariantCulture, $"{b.Plan.Layer.Name}: sparsity {b.Plan.Sparsity:P0}, validation {b.Score:P2}"));
            progress.Accepted(log[^1], plans.Select(p => p.Candidates.Length - 1 - p.Level));
        }
    }

    /// <summary>
    /// Reports each step a greedy search accepts ("  + ..." lines, which builds show at the default verbosity) with
    /// the time so far and a bound on what is left: each round tries every layer with a step left and accepts at
    /// most one step, so with R steps left over L layers at most R + (R - 1) + ... + (R - L + 1) tries remain.
    /// </summary>
    private sealed class SearchProgress(IProgress<string> say)
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private int _tries, _accepted;

        public void Tried() => _tries++;

        public void Accepted(string step, IEnumerable<int> stepsLeft)
        {
            var left = stepsLeft.Where(n => n > 0).ToList();
            int total = left.Sum();
            long bound = Enumerable.Range(0, left.Count).Sum(j => (long)(total - j));
            double perTry = _clock.Elapsed.TotalSeconds / Math.Max(1, _tries);
            say.Report(string.Create(CultureInfo.InvariantCulture,
                $"  + step {++_accepted} accepted: {step} (after {_tries} tries, {_clock.Elapsed.TotalSeconds:0} s; {(bound == 0 ? "no steps left" : $"at most {bound} more tries, about {bound * perTry:0} s at {perTry:0.0} s each")})"));
        }
    }

    /// <summary>Fractions of a group's channels the node-pruning search steps through.</summary>
    public static readonly double[] NodeLevels = [0.125, 0.25, 0.375, 0.5, 0.625, 0.75];

    private sealed record NodeResult(ModelProto Model, Dictionary<string, (int Kept, int Channels)> Kept);

    /// <summary>
    /// Node pruning of the channel groups the target's parallelism calls for (conv channels on moderate and high
    /// parallelism, FC neurons on high): channels ranked by calibration importance, the fraction removed per group
    /// chosen greedily by MACs saved within the budget; Gemm consumers are refit by least squares.
    /// </summary>
    private static NodeResult NodePhase(OnnxModel original, ModelGraph model, PruneOptions o, Dataset? calibration, Dataset? validation,
        int[]? truth, double floor, List<string> log, IProgress<string> say)
    {
        var none = new NodeResult(original.Proto, []);
        if (o.Method != Method.Scalpel || validation is null) return none;
        var groups = NodeGroups(original.Proto, model, o);
        if (groups.Count == 0) return none;
        say.Report($"node pruning: {groups.Count} channel groups ({string.Join(", ", groups.Select(g => $"{g.ProducerName} x{g.Channels}"))})");

        var graph = new OnnxGraph(original);
        Dictionary<string, float[]>? tensors = null;
        if (calibration is not null)
        {
            say.Report($"calibrating node importance and consumer refits on {calibration.Count} samples");
            using var runner = new OrtRunner(original.Proto, groups.Select(g => g.Activation).Concat(groups.Where(g => g.ConsumerIsGemm).Select(g => g.Consumer.Input[0])));
            tensors = runner.Run(calibration);
        }
        var means = tensors is null ? [] : groups.ToDictionary(g => g, g => NodePruning.ChannelMeans(tensors[g.Activation], g.Channels, g.Spatial));
        var refitters = tensors is null ? [] : groups.ToDictionary(g => g, g => ConsumerRefit.Create(g, graph, model, tensors));
        // Channels ranked most important first: by their OBS removal cost when the consumer is refit, else by energy.
        var order = groups.ToDictionary(g => g, g =>
        {
            var costs = refitters.GetValueOrDefault(g)?.ChannelCosts(g.Channels) ?? NodePruning.Importance(g, graph, tensors?[g.Activation]);
            return Enumerable.Range(0, g.Channels).OrderByDescending(j => costs[j]).ThenBy(j => j).ToArray();
        });
        tensors = null; // the search's closures capture this variable: drop the activations (hundreds of MB) before the search
        var levels = groups.ToDictionary(g => g, g => Override(o, g.ProducerName, g.ProducerIsConv ? "conv" : "fc")?.Sparsity is { } s ? new[] { s } : NodeLevels);
        var state = groups.ToDictionary(g => g, _ => -1);
        var refits = new Dictionary<(ChannelGroup, int), (float[], float[])>();

        int[] Keep(ChannelGroup g, int level) =>
            level < 0 ? Enumerable.Range(0, g.Channels).ToArray()
            : order[g].Take(Math.Max(1, g.Channels - (int)Math.Round(levels[g][level] * g.Channels))).Order().ToArray();

        ModelProto Build(Dictionary<ChannelGroup, int> levelOf)
        {
            var proto = original.Proto.Clone();
            foreach (var g in groups.Where(g => levelOf[g] >= 0))
            {
                var keep = Keep(g, levelOf[g]);
                (float[], float[])? refit = null;
                if (refitters.GetValueOrDefault(g) is { } refitter)
                {
                    if (!refits.TryGetValue((g, levelOf[g]), out var fit)) refits[(g, levelOf[g])] = fit = refitter.Fit(keep);
                    refit = fit;
                }
                NodePruning.Apply(proto, g, keep, refit, means.GetValueOrDefault(g));
            }
            return proto;
        }

        double Score(ModelProto proto) => Accuracy.Evaluate(proto, validation, truth!);

        var progress = new SearchProgress(say);
        while (true)
        {
            (ChannelGroup Group, double Score, double Gain)? best = null;
            foreach (var g in groups.Where(g => state[g] + 1 < levels[g].Length))
            {
                o.Cancellation.ThrowIfCancellationRequested();
                var trial = new Dictionary<ChannelGroup, int>(state) { [g] = state[g] + 1 };
                double score = Score(Build(trial));
                int removed = Keep(g, state[g]).Length - Keep(g, state[g] + 1).Length;
                double gain = (double)removed * g.MacsPerChannel;
                say.Report(string.Create(CultureInfo.InvariantCulture, $"  try {g.ProducerName}: remove {levels[g][state[g] + 1]:P0} of {g.Channels} channels: {score:P2}{(score >= floor ? "" : " (over budget)")}"));
                progress.Tried();
                if (score >= floor && gain > 0 && (best is null || gain > best.Value.Gain)) best = (g, score, gain);
            }
            if (best is not { } b) break;
            state[b.Group]++;
            log.Add(string.Create(CultureInfo.InvariantCulture, $"{b.Group.ProducerName}: node pruning keeps {Keep(b.Group, state[b.Group]).Length} of {b.Group.Channels}, validation {b.Score:P2}"));
            progress.Accepted(log[^1], groups.Select(g => levels[g].Length - 1 - state[g]));
        }
        var kept = groups.Where(g => state[g] >= 0).ToDictionary(g => g.ProducerName, g => (Keep(g, state[g]).Length, g.Channels));
        return kept.Count == 0 ? none : new NodeResult(Build(state), kept);
    }

    /// <summary>The channel groups to node-prune: those the target's parallelism calls for (conv channels on moderate and high, FC neurons on high), after overrides.</summary>
    private static List<ChannelGroup> NodeGroups(ModelProto proto, ModelGraph model, PruneOptions o) => NodePruning.Find(proto, model).Where(g =>
    {
        var ov = Override(o, g.ProducerName, g.ProducerIsConv ? "conv" : "fc");
        bool byParallelism = g.ProducerIsConv ? o.Target.Parallelism != Parallelism.Low : o.Target.Parallelism == Parallelism.High;
        return ov?.KeepDense != true && (ov?.Technique == Technique.Node || (ov?.Technique is null && byParallelism));
    }).ToList();

    private static LayerOverride? Override(PruneOptions o, string name, string kind) =>
        o.Overrides.GetValueOrDefault(name) ?? o.Overrides.GetValueOrDefault(kind);

    private static List<LayerPlan> Plan(ModelGraph model, ModelProto proto, PruneOptions o)
    {
        var plans = new List<LayerPlan>();
        foreach (var layer in model.Layers.Where(l => l is DenseLayer or ConvLayer { Group: 1 }))
        {
            bool fc = layer is DenseLayer;
            var ov = Override(o, layer.Name, fc ? "fc" : "conv");
            var cross = fc ? o.Target.Crossover.Fc : o.Target.Crossover.Conv;
            string? note = null;
            WeightFormat format;
            string technique;
            if (o.Method == Method.Dense || ov?.KeepDense == true)
                (format, technique, note) = (WeightFormat.Dense, "none", o.Method == Method.Dense ? null : "kept dense by override");
            else if (ov?.Technique == Technique.Node)
                continue; // node-pruned by override
            else if (ov?.Technique is null && !fc && o.Method == Method.Scalpel && o.Target.Parallelism != Parallelism.Low)
                continue; // conv layers on moderate and high parallelism are node-pruned (or left alone) instead
            else if (!OnnxWriteback.CanRewrite(proto, layer) || layer is DenseLayer { TransposeInput: true } or DenseLayer { BiasFull: not null })
                (format, technique, note) = (WeightFormat.Dense, "none", "weight is not a plain initializer of this layer (shared, or BatchNorm folded into it)");
            else if (ov?.Technique == Technique.Csr || (ov?.Technique is null && o.Method == Method.Traditional))
                (format, technique) = (WeightFormat.Csr, "traditional weight pruning");
            else if (ov?.Technique == Technique.Weight)
                (format, technique) = SimdAware(fc, o.Target);
            else if (o.Target.Parallelism == Parallelism.High)
                (format, technique, note) = (WeightFormat.Dense, "none", "high parallelism: node pruning only");
            else
                (format, technique) = SimdAware(fc, o.Target);

            double crossover = format switch { WeightFormat.Csr => cross.Csr, WeightFormat.OutputGrouped => cross.OutputGrouped, _ => cross.GroupedCsr };
            double[] candidates = format == WeightFormat.Dense ? []
                : ov?.Sparsity is { } fixedSparsity ? [fixedSparsity]
                : format == WeightFormat.Csr ? Levels // the baseline ignores the crossover, as traditional pruning does
                : Levels.Where(s => s >= crossover).ToArray();
            if (format != WeightFormat.Dense && candidates.Length == 0)
                (format, note) = (WeightFormat.Dense, $"no sparsity level reaches the crossover {crossover:P0}");
            int group = format is WeightFormat.GroupedCsr or WeightFormat.OutputGrouped ? o.Target.GroupWidth : 1;
            plans.Add(new LayerPlan
            {
                Layer = layer, Technique = technique, Format = format, GroupWidth = group, Crossover = crossover, Candidates = candidates, Note = note,
                Fixed = format != WeightFormat.Dense && ov?.Sparsity is not null,
            });
        }
        return plans;
    }

    /// <summary>
    /// SIMD-aware weight pruning's format: for FC layers, the target's group orientation with the lowest measured
    /// crossover (output-grouped on a tie: no horizontal sums); conv layers group along C * KH * KW.
    /// </summary>
    private static (WeightFormat, string) SimdAware(bool fc, TargetProfile t)
    {
        var ways = t.GroupOrientations;
        bool outputs = fc && ways.Contains(GroupOrientation.Outputs)
            && (!ways.Contains(GroupOrientation.Inputs) || t.Crossover.Fc.OutputGrouped <= t.Crossover.Fc.GroupedCsr);
        return outputs ? (WeightFormat.OutputGrouped, "SIMD-aware weight pruning along outputs") : (WeightFormat.GroupedCsr, "SIMD-aware weight pruning");
    }

    private static PruneReport Report(PruneOptions o, ModelGraph original, ModelGraph model, List<LayerPlan> plans, Dictionary<string, (int Kept, int Channels)> nodes,
        Criterion criterion, Dataset? calibration, Dataset? validation, double? before, double? after, List<string> search)
    {
        var layers = new List<LayerReport>();
        long denseTotal = 0, prunedTotal = 0;
        double denseMacs = 0, predictedMacs = 0;
        foreach (var layer in original.Layers.Where(l => l is DenseLayer or ConvLayer))
        {
            var final = model.Layers.First(l => l.Name == layer.Name);
            var plan = plans.FirstOrDefault(p => p.Layer == final);
            long weights = Weights(layer);
            long dense = 4 * weights;
            long values = 4 * Weights(final), indices = 0, pointers = 0;
            string format = "dense";
            if (plan is { Level: >= 0, SlowerThanDense: null })
            {
                var m = SparseMatrix.For(plan.Format, plan.Weight, plan.Rows, plan.Cols, plan.GroupWidth);
                values = 4L * (m.Values.Length + m.Tail.Length);
                indices = (long)m.IndexBytes * m.Entries;
                pointers = (long)m.RowStartBytes * m.RowStarts.Length;
                format = plan.Format switch { WeightFormat.Csr => "CSR", WeightFormat.OutputGrouped => $"output-grouped (G={plan.GroupWidth})", _ => $"grouped CSR (G={plan.GroupWidth})" };
            }
            // Along outputs the values hold a partial block's padding, and a layer run dense holds its zeros: count the weights kept.
            double kept = plan is { Level: >= 0 } && (plan.AlongOutputs || plan.SlowerThanDense is not null)
                ? plan.Weight.Count(v => v != 0f) / (double)weights : values / 4.0 / weights;
            var techniques = new List<string>();
            if (nodes.TryGetValue(layer.Name, out var n)) techniques.Add($"node pruning ({n.Kept}/{n.Channels} kept)");
            if (plan is { Level: >= 0 }) techniques.Add(plan.Technique);
            if (techniques.Count == 0 && Weights(final) < weights) techniques.Add("inputs removed by node pruning upstream");
            string? note = plan?.SlowerThanDense ?? plan?.Note ?? (plan is { Level: < 0, Candidates.Length: > 0 } ? $"{plan.Technique}: no sparsity step kept the validation score within budget" : null);
            if (note is null && !nodes.ContainsKey(layer.Name) && layer is ConvLayer && Weights(final) == weights)
                note = o.Method != Method.Scalpel ? null
                    : o.Target.Parallelism == Parallelism.Low ? "grouped or depthwise conv: left dense"
                    : "no removable channel group (residual Add, Concat or output), or no step within budget";
            denseTotal += dense;
            denseMacs += layer.Macs;
            prunedTotal += values + indices + pointers;
            layers.Add(new LayerReport
            {
                Name = layer.Name, Kind = layer is DenseLayer ? "fc" : "conv",
                Technique = techniques.Count == 0 ? "none" : string.Join(" + ", techniques), Format = format, KeptFraction = kept,
                DenseBytes = dense, Bytes = values + indices + pointers, ValueBytes = values, IndexBytes = indices, RowPointerBytes = pointers,
                Macs = plan is { Level: >= 0 } ? (long)Math.Round(final.Macs * (1 - plan.Sparsity)) : final.Macs,
                PredictedRelativeTime = (double)final.Macs / Math.Max(1, layer.Macs) * (plan?.RelativeTime(plan.Level) ?? 1),
                Note = note,
            });
            predictedMacs += layer.Macs * layers[^1].PredictedRelativeTime;
        }
        return new PruneReport
        {
            Model = Path.GetFileName(o.ModelPath), Target = o.Target.Name, Method = o.Method.ToString(),
            Criterion = criterion == Criterion.DataAware ? "data-aware (w' H w per group; E[a^2] x consumer weight energy per node)" : "magnitude (|w|, RMS per group; filter L2 norm per node)",
            Reconstruction = plans.Any(p => p.Stats is not null) || nodes.Count > 0 && calibration is not null
                ? $"least-squares refit per output row, exact Cholesky solve, damping {WeightPruning.Damping} x mean diag(H): weight-pruned layers on their kept weights; the layer after a node-pruned one on its kept inputs plus a bias correction (conv: im2col patches, {ConsumerRefit.PositionsPerSample} positions per image)"
                : "none (no calibration data)",
            Layers = layers, DenseBytes = denseTotal, PrunedBytes = prunedTotal, PredictedSpeedup = denseMacs / Math.Max(1, predictedMacs),
            AccuracyMetric = validation is null ? "none" : validation.Labels is null ? "agreement" : "accuracy",
            AccuracyBefore = before, AccuracyAfter = after, MaxAccuracyDrop = validation?.Labels is null ? null : o.MaxAccuracyDrop, MinAgreement = validation is { Labels: null } ? o.MinAgreement : null,
            ValidationSamples = validation?.Count ?? 0, CalibrationSamples = calibration?.Count ?? 0, Search = search,
        };

        static long Weights(Layer l) => l is DenseLayer d ? (long)d.N * d.K : ((ConvLayer)l).Weight.LongLength;
    }

    /// <summary>
    /// Writes C.bin, C.onnx, C.report.json, C.report.md and C.g.cs all or none (see ModelCompiler.WriteAll). C.g.cs comes
    /// last because builds treat it as the run's output: if a kill lands between renames, it is still old.
    /// </summary>
    public static IReadOnlyList<string> Write(PruneResult result, string outDir, string className, CancellationToken cancellation = default)
    {
        var pruned = new MemoryStream();
        new OnnxModel(result.PrunedOnnx, null, className + ".onnx").Save(pruned);
        var files = new (string Path, byte[] Bytes)[]
        {
            (Path.Combine(outDir, className + ".bin"), result.Code.Weights),
            (Path.Combine(outDir, className + ".onnx"), pruned.ToArray()),
            (Path.Combine(outDir, className + ".report.json"), System.Text.Encoding.UTF8.GetBytes(result.Report.ToJson())),
            (Path.Combine(outDir, className + ".report.md"), System.Text.Encoding.UTF8.GetBytes(result.Report.ToMarkdown())),
            (Path.Combine(outDir, className + ".g.cs"), System.Text.Encoding.UTF8.GetBytes(result.Code.Source)),
        };
        ModelCompiler.WriteAll(outDir, files, cancellation);
        return files.Select(f => f.Path).ToList();
    }
}
