using System.Globalization;
using System.Numerics.Tensors;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;
using Scalpel.Pruning.Calibration;
using Scalpel.Pruning.Data;
using Scalpel.Pruning.Methods;
using Scalpel.Pruning.Planning;
using Scalpel.Pruning.Search;
using Scalpel.Pruning.Training;

namespace Scalpel.Pruning.Retraining;

/// <summary>
/// The paper's schedule: prune a step further, retrain, and keep the step only while the validation budget
/// holds. Node steps remove more channels of each node-pruned group (smallest filters of the retrained
/// weights first) and retrain the smaller network; weight steps raise each weight-pruned layer one sparsity
/// level (magnitude groups of the retrained weights) and retrain with the pruned entries masked. A step
/// first tries every layer (or group) at once, then each one holding a tenth of the work or more alone.
/// Training never changes a state: it trains copies and returns a new <see cref="PruneState"/>.
/// </summary>
internal sealed class Retrainer(ModelProto original, Dataset train, Budget budget, PruneOptions o, List<string> log, IProgress<string> say)
{
    private readonly RunClock _run = new();
    private readonly RetrainOptions _r = o.Retraining;
    private float[]? _teacher;
    private int _epochs;

    private TrainOptions Options => new()
    {
        Epochs = _r.EpochsPerStep, BatchSize = _r.BatchSize, Optimizer = _r.Optimizer, LearningRate = _r.LearningRate, Distillation = _r.Distillation,
        Seed = _r.Seed, Progress = say, Cancellation = o.Cancellation,
    };

    /// <summary>What may train: weights and biases that are their layer's own initializers in <paramref name="proto"/> (so they can be written back), and gates.</summary>
    private static Func<Layer, ParameterRole, bool> Trainable(ModelProto proto) => (layer, role) => role switch
    {
        ParameterRole.Weight => OnnxWriteback.CanRewrite(proto, (WeightedLayer)layer),
        ParameterRole.Bias => OnnxWriteback.BiasSource(proto, (WeightedLayer)layer) is not null,
        _ => true,
    };

    /// <summary>
    /// The original model's logits on the training set, for distillation. A model ending in Softmax outputs
    /// probabilities: their logarithms are logits of the same distribution (the network trains on the Softmax's input).
    /// </summary>
    private float[]? Teacher(ModelGraph model)
    {
        if (_r.Distillation <= 0) return null;
        if (_teacher is null)
        {
            _teacher = Accuracy.Logits(original, train);
            if (model.Layers[^1] is SoftmaxLayer { Log: false } s && s.Output == model.OutputName)
                for (int i = 0; i < _teacher.Length; i++) _teacher[i] = MathF.Log(MathF.Max(_teacher[i], 1e-30f));
        }
        return _teacher;
    }

    /// <summary>The state's graph with private copies of every array that trains: the trainer updates those in place.</summary>
    private static ModelGraph TrainingCopy(PruneState state)
    {
        var model = state.Model();
        var trainable = Trainable(state.BaselineOnnx);
        return model with
        {
            Layers = model.Layers.Select(l => l is WeightedLayer w
                ? w with
                {
                    Weight = trainable(w, ParameterRole.Weight) ? (float[])w.Weight.Clone() : w.Weight,
                    Bias = w.Bias is not null && trainable(w, ParameterRole.Bias) ? (float[])w.Bias.Clone() : w.Bias,
                }
                : l).ToList(),
        };
    }

    /// <summary>The state holding what the network's weights and biases trained to (gates already folded in).</summary>
    private static PruneState Trained(PruneState state, Network net) => state.With(net.Parameters
        .Where(p => p.Role is ParameterRole.Weight or ParameterRole.Bias).GroupBy(p => p.Layer.Name)
        .Select(g =>
        {
            var layer = (WeightedLayer)g.First().Layer;
            var current = state.WeightsOf(layer);
            return KeyValuePair.Create(g.Key, current with { Weight = layer.Weight, Bias = layer.Bias });
        }));

    private static IReadOnlySet<Layer> Select(ModelGraph model, IEnumerable<string> names)
    {
        var set = names.ToHashSet(StringComparer.Ordinal);
        return model.Layers.Where(l => set.Contains(l.Name)).ToHashSet(ReferenceEqualityComparer.Instance as IEqualityComparer<Layer>);
    }

    /// <summary>Trains the state's layers (pruned entries of the <paramref name="masked"/> layers kept at zero) and scores the result.</summary>
    /// <param name="stepsLeft">Retraining steps expected after this one, for the run's time estimate.</param>
    public (PairedAccuracy Result, PruneState State) Fit(PruneState state, IEnumerable<string> masked, string what, string label, int stepsLeft)
    {
        var model = TrainingCopy(state);
        var net = new Network(model, Select(model, masked), Trainable(state.BaselineOnnx));
        say.Report($"retraining {what} ({label}): {train.Count} samples, up to {_r.EpochsPerStep} epoch(s); {_run.Line(stepsLeft + 1)}");
        PairedAccuracy Score() => budget.Paired(Trainer.Predict(net, budget.Validation));
        var stop = _r.EarlyStop ? new EarlyStopping(budget, _r.PlateauPoints / 100, _r.GiveUpPoints / 100, _r.ClearPoints / 100) : null;
        _run.FitStarted();
        var before = _r.EarlyStop ? Score() : null;
        double? untrained = before?.PrunedAccuracy;
        if (untrained < budget.Floor - _r.HopelessPoints / 100)
        {
            // A cheap check before retraining: a step this far over budget has not recovered within one step's epochs.
            _run.FitEnded();
            string skip = string.Create(CultureInfo.InvariantCulture, $"not retrained {what} ({label}): validation before retraining {untrained:P2}, over {_r.HopelessPoints} points below the budget");
            say.Report("  " + skip);
            log.Add(skip);
            return (before!, state);
        }
        PairedAccuracy? last = null;
        var losses = Trainer.Train(net, train, Teacher(model), Options with { AfterEpoch = stop is null ? null : _ => stop.Continue(last = Score()) });
        _epochs += losses.Count;
        // An early stop has just scored the net; otherwise score it now.
        var result = stop?.Reason is not null ? last! : Score();
        double score = result.PrunedAccuracy;
        _run.FitEnded();
        string epochs = stop is null ? "" : string.Create(CultureInfo.InvariantCulture,
            $", {losses.Count} of {_r.EpochsPerStep} epochs{(stop.Reason is { } why ? $" ({why})" : "")}, validation after each: {string.Join(" ", stop.Scores.Append(score).Take(losses.Count).Select(v => v.ToString("P2", CultureInfo.InvariantCulture)))}");
        string line = string.Create(CultureInfo.InvariantCulture, $"retrained {what} ({label}): loss {losses[^1]:0.0000}, validation {score:P2}, {budget.Describe(result)}{epochs}{(untrained is { } u ? $", before retraining {u:P2}" : "")}");
        say.Report("  " + line);
        log.Add(line);
        return (result, Trained(state, net));
    }

    private static IEnumerable<List<T>> Attempts<T>(List<T> all, Func<T, long> work) where T : notnull
    {
        if (all.Count == 0) yield break;
        yield return all;
        if (all.Count == 1) yield break;
        long total = all.Sum(work);
        foreach (var one in all.Where(x => work(x) * 10 >= total).OrderByDescending(work)) yield return [one];
    }

    /// <summary>Node steps with retraining, from the calibration-only node search's result.</summary>
    public NodeResult Nodes(NodeResult start, OnnxModel source)
    {
        if (o.Method != Method.Scalpel) return start; // the baseline and dense rows never node-prune
        ModelGraph Analyze(ModelProto proto) => GraphAnalyzer.Analyze(new OnnxModel(proto, source.BaseDirectory, source.Source));
        var proto = start.Model;
        var analyzed = Analyze(proto);
        var initial = Planner.NodeGroups(proto, analyzed, o);
        if (initial.Count == 0) return start;
        // Per group: channels of the original model, and channels kept now.
        var channels = initial.ToDictionary(g => g.ProducerName, g => start.Kept.GetValueOrDefault(g.ProducerName, (g.Channels, g.Channels)).Item2);
        var kept = initial.ToDictionary(g => g.ProducerName, g => g.Channels);
        var closed = new Dictionary<string, int>();
        if (_r.NodeSelection == NodeSelection.Gates)
        {
            PruneState gated;
            (closed, gated) = TrainGates(PruneState.Of(analyzed, proto), kept.Keys.ToHashSet(), NodeStepsLeft(-1));
            (proto, analyzed) = (gated.Onnx(), gated.Model());
        }
        bool anyAccepted = false;
        int Next(string name)
        {
            // Gates: the first step removes every node whose gate closed, if the schedule's next level removes fewer.
            int gated = closed.TryGetValue(name, out int n) && kept[name] == channels[name] ? Math.Max(1, kept[name] - n) : kept[name];
            foreach (var level in Planner.NodeLevels)
            {
                int keep = Math.Max(1, channels[name] - (int)Math.Round(level * channels[name]));
                if (keep < kept[name]) return Math.Min(keep, gated);
            }
            return Math.Min(kept[name], gated);
        }
        string State(Dictionary<string, int> k) => string.Join(", ", k.Select(g => $"{g.Key} {g.Value}/{channels[g.Key]}"));
        for (int step = 0; step < _r.MaxSteps; step++)
        {
            var groups = Planner.NodeGroups(proto, analyzed, o).Where(g => channels.ContainsKey(g.ProducerName) && Next(g.ProducerName) < kept[g.ProducerName]).ToList();
            bool accepted = false;
            foreach (var attempt in Attempts(groups, g => g.MacsPerChannel * g.Channels))
            {
                var trial = proto.Clone();
                var trialKept = new Dictionary<string, int>(kept);
                var graph = new OnnxGraph(new OnnxModel(trial, source.BaseDirectory, source.Source));
                foreach (var g in Planner.NodeGroups(trial, analyzed, o).Where(g => attempt.Any(a => a.ProducerName == g.ProducerName)))
                {
                    var importance = NodePruning.Importance(g, graph, null);
                    var keep = Enumerable.Range(0, g.Channels).OrderByDescending(j => importance[j]).ThenBy(j => j).Take(Next(g.ProducerName)).Order().ToArray();
                    NodePruning.Apply(trial, g, keep);
                    trialKept[g.ProducerName] = keep.Length;
                }
                var (fit, trained) = Fit(PruneState.Of(Analyze(trial), trial), [], $"node step {step + 1}", State(trialKept), NodeStepsLeft(step));
                if (budget.Holds(fit))
                {
                    (proto, analyzed, kept, accepted, anyAccepted) = (trained.Onnx(), trained.Model(), trialKept, true, true);
                    break;
                }
            }
            if (!accepted) break;
        }
        // Only a step that passed validation changes the model (gate training alone is never adopted unchecked).
        if (!anyAccepted) return start;
        var result = kept.Where(k => k.Value < channels[k.Key]).ToDictionary(k => k.Key, k => (k.Value, channels[k.Key]));
        return new NodeResult(proto, result);
    }

    /// <summary>
    /// Steps expected after node step <paramref name="step"/> (from 0): the node levels still to go, then the
    /// weight phase's first fit and its steps (every step accepted at its first try).
    /// </summary>
    private int NodeStepsLeft(int step) =>
        Math.Max(0, Math.Min(_r.MaxSteps, Planner.NodeLevels.Length) - step - 1) + WeightStepsLeft(-1, Planner.RetrainLevels.Length) + 1;

    private int WeightStepsLeft(int step, int levelsLeft) => Math.Max(0, Math.Min(_r.MaxSteps - step - 1, levelsLeft));

    /// <summary>Gates below this fraction of their group's largest gate count as closed.</summary>
    private const float GateThreshold = 0.05f;

    /// <summary>
    /// The paper's learned node gates: a gate per output channel of each group's producer, trained with an L1
    /// penalty, then folded into the producer's filters and bias (exact: gates are kept >= 0, and
    /// relu(z) g = relu(g z)). Filter-norm ranking then follows the gates. Returns, per group, how many gates
    /// closed, and the state with the gates folded in.
    /// </summary>
    private (Dictionary<string, int> Closed, PruneState State) TrainGates(PruneState state, IReadOnlySet<string> producers, int stepsLeft)
    {
        // Gates fold into the producer's weights and bias, so only producers whose both are written back get one.
        var model = TrainingCopy(state);
        var trainable = Trainable(state.BaselineOnnx);
        var layers = model.Layers.OfType<WeightedLayer>().Where(l => producers.Contains(l.Name) && l.Gateable
            && trainable(l, ParameterRole.Weight) && (l.Bias is null || trainable(l, ParameterRole.Bias))).ToHashSet<Layer>(ReferenceEqualityComparer.Instance);
        var net = new Network(model, null, trainable, layers);
        say.Report($"training node gates (L1 penalty {_r.GatePenalty.ToString(CultureInfo.InvariantCulture)}) on {string.Join(", ", layers.Select(l => l.Name))}: {_r.EpochsPerStep} epoch(s); {_run.Line(stepsLeft + 1)}");
        _run.FitStarted();
        Trainer.Train(net, train, Teacher(model), Options with { GatePenalty = _r.GatePenalty });
        _run.FitEnded();
        _epochs += _r.EpochsPerStep;
        var closed = new Dictionary<string, int>();
        foreach (var gate in net.Parameters.Where(p => p.Role == ParameterRole.Gate))
        {
            var layer = (WeightedLayer)gate.Layer;
            int per = layer.Weight.Length / gate.Value.Length;
            for (int ch = 0; ch < gate.Value.Length; ch++)
            {
                TensorPrimitives.Multiply(layer.Weight.AsSpan(ch * per, per), gate.Value[ch], layer.Weight.AsSpan(ch * per, per));
                if (layer.Bias is not null) layer.Bias[ch] *= gate.Value[ch];
            }
            float max = TensorPrimitives.Max(gate.Value);
            closed[layer.Name] = gate.Value.Count(g => g <= GateThreshold * max);
            string line = $"node gates of {layer.Name}: {closed[layer.Name]} of {gate.Value.Length} below {GateThreshold:P0} of the largest (" +
                string.Join(" ", gate.Value.Select(g => g.ToString("0.00", CultureInfo.InvariantCulture))) + ")";
            say.Report("  " + line);
            log.Add(line);
        }
        return (closed, Trained(state, net));
    }

    /// <summary>Weight steps with retraining from <paramref name="pruned"/>; returns the last state within budget.</summary>
    public PruneState Weights(PruneState pruned, List<LayerPlan> plans)
    {
        IEnumerable<string> Masked() => plans.Where(p => p.Level >= 0).Select(p => p.Layer.Name);
        string Levels() => string.Join(", ", plans.Where(p => p.Level >= 0).Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Layer.Name} {p.Sparsity:P0}")));
        int LevelsLeft() => plans.Select(p => p.RetrainStepsLeft()).DefaultIfEmpty(0).Max();
        var (result, state) = Fit(pruned, Masked(), "the pruned model", Levels(), WeightStepsLeft(-1, LevelsLeft()));
        // Fine-tuning never makes the calibrated result worse in practice; if it did, keep that result.
        if (!budget.Holds(result)) return pruned;
        for (int step = 0; step < _r.MaxSteps; step++)
        {
            var raise = plans.Where(p => p.Candidates.Length > 0 && p.Level < p.Candidates.Length - 1).ToList();
            bool accepted = false;
            foreach (var attempt in Attempts(raise, p => p.Layer.Weight.Length))
            {
                var trial = state;
                var levels = attempt.ToDictionary(p => p, p => p.Level);
                foreach (var p in attempt)
                {
                    p.Level = p.RetrainLevel();
                    var current = trial.WeightsOf(p.Layer);
                    var weight = WeightPruning.Prune(current.Weight, p.Rows, p.Cols, p.GroupWidth, p.Candidates[p.Level], Criterion.Magnitude, null, p.AlongOutputs).Weight;
                    trial = trial.With(p.Layer.Name, p.Weights(weight, current.Bias));
                }
                (result, var trained) = Fit(trial, Masked(), $"weight step {step + 1}", Levels(), WeightStepsLeft(step, LevelsLeft()));
                if (budget.Holds(result))
                {
                    (state, accepted) = (trained, true);
                    break;
                }
                foreach (var p in attempt) p.Level = levels[p];
            }
            if (!accepted) break;
        }
        return state;
    }

    /// <summary>One line for the report: what retraining ran.</summary>
    public string Summary() => string.Create(CultureInfo.InvariantCulture,
        $"{_epochs} epochs of masked fine-tuning on {train.Count} samples in {_run.Elapsed.TotalSeconds:0} s ({_r.Optimizer}, peak learning rate {_r.LearningRate}, cosine schedule per step, batch {_r.BatchSize}, distillation {_r.Distillation}, node selection by {(_r.NodeSelection == NodeSelection.Gates ? "learned gates" : "filter norm")})");
}

