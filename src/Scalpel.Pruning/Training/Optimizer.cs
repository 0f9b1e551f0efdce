using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

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
        BeginStep();
        foreach (var p in _state.Keys) Update(p, gradients[p], 0, p.Value.Length, baseLearningRate);
    }

    /// <summary>Starts an update made of <see cref="Update"/> calls over disjoint ranges (which may run in parallel).</summary>
    public void BeginStep() => _steps++;

    /// <summary>Updates entries [start, start + length) of one parameter: each entry's update depends on that entry alone.</summary>
    public void Update(Parameter p, float[] gradient, int start, int length, float baseLearningRate)
    {
        var (mAll, vAll) = _state[p];
        float learningRate = p.Role == ParameterRole.Gate ? baseLearningRate * GateLearningRateScale : baseLearningRate;
        var g = gradient.AsSpan(start, length);
        var w = p.Value.AsSpan(start, length);
        var m = mAll.AsSpan(start, length);
        if (p.Mask is { } mask) TensorPrimitives.Multiply(g, mask.AsSpan(start, length), g);
        if (_weightDecay > 0f && p.Role == ParameterRole.Weight) TensorPrimitives.MultiplyAdd(w, _weightDecay, g, g);
        if (_kind == OptimizerKind.Sgd)
        {
            TensorPrimitives.MultiplyAdd(m, _momentum, g, m);         // m = momentum m + g
            TensorPrimitives.MultiplyAdd(m, -learningRate, w, w);     // w -= lr m
        }
        else Adam(g, w, m, vAll.AsSpan(start, length), learningRate);
        if (p.Mask is { } keep) TensorPrimitives.Multiply(w, keep.AsSpan(start, length), w);
    }

    private void Adam(Span<float> g, Span<float> w, Span<float> m, Span<float> v, float learningRate)
    {
        float c1 = 1f - MathF.Pow(_beta1, _steps), c2 = 1f - MathF.Pow(_beta2, _steps);
        float step = learningRate / c1, inverseC2 = 1f / c2;
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var (b1, b2, a1, a2, vs, vc, ve) = (Vector256.Create(_beta1), Vector256.Create(_beta2), Vector256.Create(1f - _beta1), Vector256.Create(1f - _beta2),
                Vector256.Create(step), Vector256.Create(inverseC2), Vector256.Create(_epsilon));
            for (; i + 8 <= w.Length; i += 8)
            {
                var gi = Vector256.Create(g.Slice(i, 8));
                var mi = b1 * Vector256.Create(m.Slice(i, 8)) + a1 * gi;
                var vi = b2 * Vector256.Create(v.Slice(i, 8)) + a2 * gi * gi;
                mi.CopyTo(m.Slice(i, 8));
                vi.CopyTo(v.Slice(i, 8));
                (Vector256.Create(w.Slice(i, 8)) - vs * mi / (Vector256.Sqrt(vi * vc) + ve)).CopyTo(w.Slice(i, 8));
            }
        }
        for (; i < w.Length; i++)
        {
            m[i] = _beta1 * m[i] + (1f - _beta1) * g[i];
            v[i] = _beta2 * v[i] + (1f - _beta2) * g[i] * g[i];
            w[i] -= step * m[i] / (MathF.Sqrt(v[i] * inverseC2) + _epsilon);
        }
    }
}
