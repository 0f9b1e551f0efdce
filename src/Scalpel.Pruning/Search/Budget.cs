using Scalpel.Onnx.Proto;
using Scalpel.Pruning.Calibration;
using Scalpel.Pruning.Data;

namespace Scalpel.Pruning.Search;

/// <summary>
/// The accuracy guard: validation samples, what each should predict (labels, or the original model's own top-1 when
/// there are none), and the lowest score a step may leave.
/// </summary>
internal sealed record Budget(Dataset Validation, int[] Truth, double Floor, int[] OriginalTop1)
{
    /// <summary>The model's predictions against the original's on the same samples: the paired accuracy delta.</summary>
    public PairedAccuracy Paired(ModelProto model) =>
        PairedAccuracy.Of(OriginalTop1, Accuracy.Top1(Accuracy.Logits(model, Validation), Validation.Count), Truth);

    /// <summary>Top-1 accuracy (or agreement) of the model on the validation samples, run by ONNX Runtime.</summary>
    public double Score(ModelProto model) => Accuracy.Evaluate(model, Validation, Truth);

    public bool Holds(double score) => score >= Floor;
}
