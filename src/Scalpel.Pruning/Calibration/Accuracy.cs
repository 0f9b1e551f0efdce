using Scalpel.Onnx.Proto;
using Scalpel.Pruning.Data;

namespace Scalpel.Pruning.Calibration;

/// <summary>Top-1 accuracy (with labels) or top-1 agreement with a reference (without), measured with ONNX Runtime.</summary>
public static class Accuracy
{
    public static float[] Logits(ModelProto model, Dataset data)
    {
        using var runner = new OrtRunner(model);
        return runner.Run(data)[runner.PrimaryOutput];
    }

    public static int[] Top1(float[] logits, int count)
    {
        int classes = logits.Length / count;
        var top = new int[count];
        for (int i = 0; i < count; i++)
        {
            var row = logits.AsSpan(i * classes, classes);
            int best = 0;
            for (int c = 1; c < classes; c++) if (row[c] > row[best]) best = c;
            top[i] = best;
        }
        return top;
    }

    /// <summary>The model's top-1 score on the data against <paramref name="truth"/> (labels, or a reference's top-1).</summary>
    public static double Evaluate(ModelProto model, Dataset data, int[] truth) => Score(Top1(Logits(model, data), data.Count), truth);

    /// <summary>Fraction of samples whose top-1 equals the label (or the reference's top-1 when there are no labels).</summary>
    public static double Score(int[] top1, int[] truth) => (double)top1.Zip(truth).Count(p => p.First == p.Second) / top1.Length;
}
