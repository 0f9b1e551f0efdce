using System.Numerics.Tensors;

namespace Scalpel.Pruning.Training;

public enum OptimizerKind { Sgd, Adam }

/// <summary>SGD with momentum, or Adam; masked entries stay exactly zero after every step.</summary>
public sealed class Optimizer
{
    private readonly OptimizerKind _kind;
    private readonly float _momentum, _beta1, _beta2, _epsilon, _weightDecay;
    private readonly Dictionary<Parameter, (float[] M, float[] V)> _state = [];
    private int _steps;

    public Optimizer(OptimizerKind kind, IEnumerable<Parameter> parameters, float momentum = 0.9f, float weightDecay = 0f)
    {
        (_kind, _momentum, _weightDecay, _beta1, _beta2, _epsilon) = (kind, momentum, weightDecay, 0.9f, 0.999f, 1e-8f);
        foreach (var p in parameters) _state[p] = (new float[p.Value.Length], kind == OptimizerKind.Adam ? new float[p.Value.Length] : []);
    }

    /// <summary>
    /// Node gates learn this many times faster than weights: a gate must be able to travel from 1 to 0 within
    /// the few epochs of one step (Adam moves a parameter about one learning rate per update).
    /// </summary>
    public const float GateLearningRateScale = 10f;

    /// <summary>One update from gradients averaged over the mini-batch.</summary>
    public void Step(IReadOnlyDictionary<Parameter, float[]> gradients, float baseLearningRate)
    {
        _steps++;
        foreach (var (p, (m, v)) in _state)
        {
            float learningRate = p.Role == "gate" ? baseLearningRate * GateLearningRateScale : baseLearningRate;
            var g = gradients[p];
            var w = p.Value;
            if (p.Mask is { } mask) TensorPrimitives.Multiply(g, mask, g);
            if (_weightDecay > 0f && p.Role == "weight") TensorPrimitives.MultiplyAdd(w, _weightDecay, g, g);
            if (_kind == OptimizerKind.Sgd)
            {
                TensorPrimitives.MultiplyAdd(m, _momentum, g, m);         // m = momentum m + g
                TensorPrimitives.MultiplyAdd(m, -learningRate, w, w);     // w -= lr m
            }
            else
            {
                float c1 = 1f - MathF.Pow(_beta1, _steps), c2 = 1f - MathF.Pow(_beta2, _steps);
                for (int i = 0; i < w.Length; i++)
                {
                    m[i] = _beta1 * m[i] + (1f - _beta1) * g[i];
                    v[i] = _beta2 * v[i] + (1f - _beta2) * g[i] * g[i];
                    w[i] -= learningRate * (m[i] / c1) / (MathF.Sqrt(v[i] / c2) + _epsilon);
                }
            }
            if (p.Mask is { } keep) TensorPrimitives.Multiply(w, keep, w);
        }
    }
}
