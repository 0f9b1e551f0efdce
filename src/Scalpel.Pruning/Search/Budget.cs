using System.Globalization;
using Scalpel.Onnx.Proto;
using Scalpel.Pruning.Calibration;
using Scalpel.Pruning.Data;

namespace Scalpel.Pruning.Search;

/// <summary>
/// The accuracy guard: validation samples, what each should predict (labels, or the original model's own top-1 when
/// there are none), the lowest score a step may leave, and the confidence with which a step must be shown to leave
/// at least that.
/// </summary>
public sealed record Budget(Dataset Validation, int[] Truth, double Floor, int[] OriginalTop1, double Confidence = Budget.DefaultConfidence)
{
    /// <summary>
    /// One-sided confidence of the guard. A search tries dozens of steps and keeps the largest that passes, so a
    /// point-estimate floor keeps steps that passed by chance. At 95 % the budget held on unseen test data in all the
    /// runs docs/performance.md lists, where 70-90 % did not; the price is compression when validation sets are small.
    /// </summary>
    public const double DefaultConfidence = 0.95;

    /// <summary>The model's predictions against the original's on the same samples: the paired accuracy delta.</summary>
    public PairedAccuracy Paired(ModelProto model) => Paired(Accuracy.Top1(Accuracy.Logits(model, Validation), Validation.Count));

    /// <summary>Top-1 predictions against the original's on the validation samples.</summary>
    public PairedAccuracy Paired(int[] top1) => PairedAccuracy.Of(OriginalTop1, top1, Truth);

    /// <summary>
    /// Whether a model stays within the budget with <see cref="Confidence"/>: the one-sided lower bound of its paired
    /// delta against the original is no lower than the floor's distance below the original's score (minus the budget
    /// with labels; without labels the original scores 1 and the bound is that of the agreement itself).
    /// A result refused only for want of confidence is kept in <see cref="Unresolved"/>.
    /// </summary>
    public bool Holds(PairedAccuracy result)
    {
        if (Shown(result)) return true;
        if (result.Delta >= Allowed(result)) Unresolved.Add(result);
        return false;
    }

    private bool Shown(PairedAccuracy result) => Margin(result) >= 0;

    /// <summary>
    /// How far the one-sided lower bound of the paired delta clears the budget: 0 or more where <see cref="Holds"/>
    /// would accept the result. Unlike <see cref="Holds"/> it records nothing, so it can be asked after every epoch.
    /// </summary>
    public double Margin(PairedAccuracy result) => result.LowerBound(Confidence) - Allowed(result);

    /// <summary>The lowest delta the budget allows (a hair lower, so that a delta of exactly the budget passes).</summary>
    private double Allowed(PairedAccuracy result) => Floor - result.OriginalAccuracy - 1e-12;

    /// <summary>Results <see cref="Holds"/> refused although their delta was within the budget: what more validation samples could resolve.</summary>
    public List<PairedAccuracy> Unresolved { get; } = [];

    /// <summary>The delta and the bound the guard checks, for the logs: "-0.25 points, at least -0.67 at 95 % (over budget)".</summary>
    public string Describe(PairedAccuracy result) => string.Create(CultureInfo.InvariantCulture,
        $"{100 * result.Delta:+0.00;-0.00} points, at least {100 * result.LowerBound(Confidence):+0.00;-0.00} at {Confidence:P0}{(Shown(result) ? "" : " (over budget)")}");
}
