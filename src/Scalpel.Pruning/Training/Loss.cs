namespace Scalpel.Pruning.Training;

/// <summary>
/// Softmax cross-entropy on the logits, optionally mixed with distillation from a teacher's logits:
/// (1 - a) CE(label) + a T² KL(softmax(teacher / T) || softmax(student / T)) (Hinton et al., 2015).
/// </summary>
public static class Loss
{
    /// <summary>Writes dLoss/dLogits into <paramref name="gradient"/> and returns the loss.</summary>
    public static float SoftmaxCrossEntropy(ReadOnlySpan<float> logits, int label, ReadOnlySpan<float> teacher, float distillation, float temperature, Span<float> gradient)
    {
        int n = logits.Length;
        Span<float> p = n <= 256 ? stackalloc float[n] : new float[n];
        Softmax(logits, 1f, p);
        float loss = -MathF.Log(MathF.Max(p[label], 1e-30f));
        for (int i = 0; i < n; i++) gradient[i] = (1f - distillation) * (p[i] - (i == label ? 1f : 0f));
        loss *= 1f - distillation;
        if (distillation > 0f && !teacher.IsEmpty)
        {
            Span<float> q = n <= 256 ? stackalloc float[n] : new float[n];
            Softmax(teacher, temperature, q);
            Softmax(logits, temperature, p);
            float kl = 0f;
            for (int i = 0; i < n; i++)
            {
                if (q[i] > 0f) kl += q[i] * (MathF.Log(q[i]) - MathF.Log(MathF.Max(p[i], 1e-30f)));
                gradient[i] += distillation * temperature * (p[i] - q[i]);
            }
            loss += distillation * temperature * temperature * kl;
        }
        return loss;
    }

    public static void Softmax(ReadOnlySpan<float> logits, float temperature, Span<float> p)
    {
        float max = float.NegativeInfinity;
        foreach (var v in logits) max = MathF.Max(max, v);
        float sum = 0f;
        for (int i = 0; i < logits.Length; i++) sum += p[i] = MathF.Exp((logits[i] - max) / temperature);
        for (int i = 0; i < logits.Length; i++) p[i] /= sum;
    }
}
