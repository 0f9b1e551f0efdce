using Scalpel.Pruning.Calibration;
using Scalpel.Pruning.Search;

namespace Scalpel.Pruning.Training;

/// <summary>
/// When a retraining step may stop before its last epoch, from the validation result after each epoch. Whether a
/// step is within budget is the accuracy guard's own check (<see cref="Budget.Margin"/>: the one-sided lower bound,
/// not the point score), so a step stops as accepted only when the guard will accept it: once the bound clears the
/// budget by <paramref name="clear"/> (the next step trains on from these weights), or clears it and the score rose
/// less than <paramref name="plateau"/> over the last epoch (the loss has settled: more epochs, at the cosine
/// schedule's smaller learning rates, would not change the decision either way). It stops as rejected once settled
/// short of the bound, or once the score is more than <paramref name="giveUp"/> below the floor (the last epochs of a
/// step recover far less than that; measured on the point score, as the margin was). Scores and margins are
/// fractions (0.001 is a tenth of a point).
/// </summary>
public sealed class EarlyStopping(Budget budget, double plateau, double giveUp, double clear)
{
    /// <summary>The validation score after each epoch so far.</summary>
    public List<double> Scores { get; } = [];

    /// <summary>Why training stopped early, or null.</summary>
    public string? Reason { get; private set; }

    /// <summary>Records the validation result after an epoch; false: stop now.</summary>
    public bool Continue(PairedAccuracy result)
    {
        double score = result.PrunedAccuracy, margin = budget.Margin(result);
        Scores.Add(score);
        bool settled = Scores.Count >= 2 && score - Scores[^2] < plateau;
        if (margin >= clear) Reason = "clearly within budget";
        else if (margin >= 0 && settled) Reason = "within budget and settled";
        else if (score < budget.Floor - giveUp) Reason = "far over budget";
        else if (settled) Reason = "over budget and settled";
        return Reason is null;
    }
}
