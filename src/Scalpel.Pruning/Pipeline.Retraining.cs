using System.Diagnostics;
using System.Globalization;
using System.Numerics.Tensors;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;
using Scalpel.Pruning.Calibration;
using Scalpel.Pruning.Data;
using Scalpel.Pruning.Methods;
using Scalpel.Pruning.Training;

namespace Scalpel.Pruning;

public static partial class Pipeline
{
    /// <summary>
    /// The paper's schedule: prune a step further, retrain, and keep the step only while the validation budget
    /// holds. Node steps remove more channels of each node-pruned group (smallest filters of the retrained
    /// weights first) and retrain the smaller network; weight steps raise each weight-pruned layer one sparsity
    /// level (magnitude groups of the retrained weights) and retrain with the pruned entries masked. A step
    /// first tries every layer (or group) at once, then each one holding a tenth of the work or more alone.
    /// </summary>
    private sealed class Retrainer(ModelProto original, Dataset train, Dataset validation, int[] truth, double floor, PruneOptions o, List<string> log, IProgress<string> say)
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly RetrainOptions _r = o.Retraining;
        private float[]? _teacher;
        private int _epochs;

        private TrainOptions Options => new()
        {
            Epochs = _r.EpochsPerStep, BatchSize = _r.BatchSize, Optimizer = _r.Optimizer, LearningRate = _r.LearningRate, Distillation = _r.Distillation,
            Seed = _r.Seed, Progress = say, Cancellation = o.Cancellation,
        };

        /// <summary>What may train: weights and biases that are their layer's own initializers in <paramref name="proto"/> (so they can be written back), and gates.</summary>
        private static Func<Layer, string, bool> Trainable(ModelProto proto) => (layer, role) => role switch
        {
            "weight" => OnnxWriteback.CanRewrite(proto, layer),
            "bias" => OnnxWriteback.BiasSource(proto, layer) is not null,
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

        /// <summary>Trains the model's layers (pruned entries of <paramref name="masked"/> kept at zero), writes them into <paramref name="proto"/>, and scores it.</summary>
        public double Fit(ModelGraph model, ModelProto proto, IReadOnlySet<Layer>? masked, string what, string state)
        {
            var net = new Network(model, masked, Trainable(proto));
            say.Report($"retraining {what} ({state}): {train.Count} samples, {_r.EpochsPerStep} epoch(s)");
            var losses = Trainer.Train(net, train, Teacher(model), Options);
            _epochs += _r.EpochsPerStep;
            WriteBack(proto, net);
            double score = Accuracy.Score(Trainer.Predict(net, validation), truth);
            string line = string.Create(CultureInfo.InvariantCulture, $"retrained {what} ({state}): loss {losses[^1]:0.0000}, validation {score:P2}{(score >= floor ? "" : " (over budget)")}");
            say.Report("  " + line);
            log.Add(line);
            return score;
        }

        private static IEnumerable<List<T>> Attempts<T>(List<T> all, Func<T, long> work) where T : notnull
        {
            if (all.Count == 0) yield break;
            yield return all;
            if (all.Count == 1) yield break;
            long total = all.Sum(work);
            foreach (var one in all.Where(x => work(x) * 10 >= total).OrderByDescending(work)) yield return [one];
        }

        /// <summary>Node steps with retraining, from the calibration-only node phase's result.</summary>
        public NodeResult Nodes(NodeResult start, OnnxModel source, PruneOptions options)
        {
            if (options.Method != Method.Scalpel) return start; // the baseline and dense rows never node-prune
            var proto = start.Model.Clone(); // gate training rewrites weights: never in the model the caller holds
            var analyzed = GraphAnalyzer.Analyze(new OnnxModel(proto, source.BaseDirectory, source.Source));
            var initial = NodeGroups(proto, analyzed, options);
            if (initial.Count == 0) return start;
            // Per group: channels of the original model, and channels kept now.
            var channels = initial.ToDictionary(g => g.ProducerName, g => start.Kept.GetValueOrDefault(g.ProducerName, (g.Channels, g.Channels)).Item2);
            var kept = initial.ToDictionary(g => g.ProducerName, g => g.Channels);
            var closed = _r.NodeSelection == NodeSelection.Gates ? TrainGates(proto, analyzed, kept.Keys.ToHashSet()) : [];
            bool anyAccepted = false;
            int Next(string name)
            {
                // Gates: the first step removes every node whose gate closed, if the schedule's next level removes fewer.
                int gated = closed.TryGetValue(name, out int n) && kept[name] == channels[name] ? Math.Max(1, kept[name] - n) : kept[name];
                foreach (var level in NodeLevels)
                {
                    int keep = Math.Max(1, channels[name] - (int)Math.Round(level * channels[name]));
                    if (keep < kept[name]) return Math.Min(keep, gated);
                }
                return Math.Min(kept[name], gated);
            }
            string State(Dictionary<string, int> k) => string.Join(", ", k.Select(g => $"{g.Key} {g.Value}/{channels[g.Key]}"));
            for (int step = 0; step < _r.MaxSteps; step++)
            {
                var groups = NodeGroups(proto, analyzed, options).Where(g => channels.ContainsKey(g.ProducerName) && Next(g.ProducerName) < kept[g.ProducerName]).ToList();
                bool accepted = false;
                foreach (var attempt in Attempts(groups, g => g.MacsPerChannel * g.Channels))
                {
                    var trial = proto.Clone();
                    var trialKept = new Dictionary<string, int>(kept);
                    var graph = new OnnxGraph(new OnnxModel(trial, source.BaseDirectory, source.Source));
                    foreach (var g in NodeGroups(trial, analyzed, options).Where(g => attempt.Any(a => a.ProducerName == g.ProducerName)))
                    {
                        var importance = NodePruning.Importance(g, graph, null);
                        var keep = Enumerable.Range(0, g.Channels).OrderByDescending(j => importance[j]).ThenBy(j => j).Take(Next(g.ProducerName)).Order().ToArray();
                        NodePruning.Apply(trial, g, keep);
                        trialKept[g.ProducerName] = keep.Length;
                    }
                    var model = GraphAnalyzer.Analyze(new OnnxModel(trial, source.BaseDirectory, source.Source));
                    if (Fit(model, trial, null, $"node step {step + 1}", State(trialKept)) >= floor)
                    {
                        (proto, analyzed, kept, accepted, anyAccepted) = (trial, model, trialKept, true, true);
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

        /// <summary>Gates below this fraction of their group's largest gate count as closed.</summary>
        private const float GateThreshold = 0.05f;

        /// <summary>
        /// The paper's learned node gates: a gate per output channel of each group's producer, trained with an L1
        /// penalty, then folded into the producer's filters and bias (exact: gates are kept >= 0, and
        /// relu(z) g = relu(g z)). Filter-norm ranking then follows the gates. Returns, per group, how many gates closed.
        /// </summary>
        private Dictionary<string, int> TrainGates(ModelProto proto, ModelGraph model, IReadOnlySet<string> producers)
        {
            // Gates fold into the producer's weights and bias, so only producers whose both are written back get one.
            var trainable = Trainable(proto);
            var layers = model.Layers.Where(l => producers.Contains(l.Name) && l is ConvLayer or DenseLayer { M: 1, BiasFull: null } && trainable(l, "weight")
                && (l is ConvLayer { Bias: null } or DenseLayer { Bias: null } || trainable(l, "bias"))).ToHashSet();
            var net = new Network(model, null, trainable, layers);
            say.Report($"training node gates (L1 penalty {_r.GatePenalty.ToString(CultureInfo.InvariantCulture)}) on {string.Join(", ", layers.Select(l => l.Name))}: {_r.EpochsPerStep} epoch(s)");
            Trainer.Train(net, train, Teacher(model), Options with { GatePenalty = _r.GatePenalty });
            _epochs += _r.EpochsPerStep;
            var closed = new Dictionary<string, int>();
            foreach (var gate in net.Parameters.Where(p => p.Role == "gate"))
            {
                var (weight, bias) = gate.Layer switch { ConvLayer c => (c.Weight, c.Bias), DenseLayer d => (d.Weight, d.Bias), _ => throw new InvalidOperationException() };
                int per = weight.Length / gate.Value.Length;
                for (int ch = 0; ch < gate.Value.Length; ch++)
                {
                    TensorPrimitives.Multiply(weight.AsSpan(ch * per, per), gate.Value[ch], weight.AsSpan(ch * per, per));
                    if (bias is not null) bias[ch] *= gate.Value[ch];
                }
                float max = TensorPrimitives.Max(gate.Value);
                closed[gate.Layer.Name] = gate.Value.Count(g => g <= GateThreshold * max);
                string line = $"node gates of {gate.Layer.Name}: {closed[gate.Layer.Name]} of {gate.Value.Length} below {GateThreshold:P0} of the largest (" +
                    string.Join(" ", gate.Value.Select(g => g.ToString("0.00", CultureInfo.InvariantCulture))) + ")";
                say.Report("  " + line);
                log.Add(line);
            }
            WriteBack(proto, net);
            return closed;
        }

        /// <summary>Writes the trained weights and biases (gates are folded into them first) into the model.</summary>
        private static void WriteBack(ModelProto proto, Network net)
        {
            foreach (var p in net.Parameters)
            {
                if (p.Role == "weight") OnnxWriteback.Write(proto, p.Layer, p.Value);
                else if (p.Role == "bias") OnnxWriteback.WriteBias(proto, p.Layer, p.Value);
            }
        }

        /// <summary>Weight steps with retraining; <paramref name="pruned"/> ends with the last model within budget.</summary>
        public void Weights(ModelProto pruned, ModelGraph model, List<LayerPlan> plans)
        {
            IReadOnlySet<Layer> Masked() => plans.Where(p => p.Level >= 0).Select(p => p.Layer).ToHashSet();
            string Levels() => string.Join(", ", plans.Where(p => p.Level >= 0).Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Layer.Name} {p.Sparsity:P0}")));
            var kept = (State: Snapshot(model, plans), Proto: pruned.Clone());
            if (Fit(model, pruned, Masked(), "the pruned model", Levels()) < floor)
            {
                // Fine-tuning never makes the calibrated result worse in practice; if it did, keep that result.
                Restore(kept.State, plans);
                Copy(kept.Proto, pruned);
                return;
            }
            kept = (Snapshot(model, plans), pruned.Clone());
            for (int step = 0; step < _r.MaxSteps; step++)
            {
                var raise = plans.Where(p => p.Candidates.Length > 0 && p.Level < p.Candidates.Length - 1).ToList();
                bool accepted = false;
                foreach (var attempt in Attempts(raise, p => p.Weight.Length))
                {
                    foreach (var p in attempt)
                    {
                        p.Level++;
                        p.Apply(WeightPruning.Prune(p.Weight, p.Rows, p.Cols, p.GroupWidth, p.Candidates[p.Level], Criterion.Magnitude, null, p.AlongOutputs).Weight);
                    }
                    if (Fit(model, pruned, Masked(), $"weight step {step + 1}", Levels()) >= floor)
                    {
                        kept = (Snapshot(model, plans), pruned.Clone());
                        accepted = true;
                        break;
                    }
                    Restore(kept.State, plans);
                    Copy(kept.Proto, pruned);
                }
                if (!accepted) break;
            }
        }

        /// <summary>One line for the report: what retraining ran.</summary>
        public string Summary() => string.Create(CultureInfo.InvariantCulture,
            $"{_epochs} epochs of masked fine-tuning on {train.Count} samples in {_clock.Elapsed.TotalSeconds:0} s ({_r.Optimizer}, peak learning rate {_r.LearningRate}, cosine schedule per step, batch {_r.BatchSize}, distillation {_r.Distillation}, node selection by {(_r.NodeSelection == NodeSelection.Gates ? "learned gates" : "filter norm")})");
    }

    private static void Copy(ModelProto from, ModelProto to)
    {
        to.Graph.Initializer.Clear();
        to.Graph.Initializer.AddRange(from.Graph.Initializer.Select(i => i.Clone()));
    }

    /// <summary>Every Dense and Conv layer's weights, bias and format, and each plan's level.</summary>
    private sealed record State(List<(Layer Layer, float[] Weight, float[]? Bias, WeightFormat Format, int GroupWidth)> Layers, Dictionary<LayerPlan, int> Levels);

    private static State Snapshot(ModelGraph model, List<LayerPlan> plans) => new(
        model.Layers.Where(l => l is DenseLayer or ConvLayer).Select(l => l switch
        {
            DenseLayer d => ((Layer)d, (float[])d.Weight.Clone(), (float[]?)d.Bias?.Clone(), d.Format, d.GroupWidth),
            ConvLayer c => (c, (float[])c.Weight.Clone(), (float[]?)c.Bias?.Clone(), c.Format, c.GroupWidth),
            _ => throw new InvalidOperationException(),
        }).ToList(),
        plans.ToDictionary(p => p, p => p.Level));

    private static void Restore(State s, List<LayerPlan> plans)
    {
        foreach (var (layer, weight, bias, format, width) in s.Layers)
        {
            switch (layer)
            {
                case DenseLayer d: (d.Weight, d.Format, d.GroupWidth) = ((float[])weight.Clone(), format, width); if (bias is not null) d.Bias = (float[])bias.Clone(); break;
                case ConvLayer c: (c.Weight, c.Format, c.GroupWidth) = ((float[])weight.Clone(), format, width); if (bias is not null) c.Bias = (float[])bias.Clone(); break;
            }
        }
        foreach (var p in plans) p.Level = s.Levels[p];
    }
}
