namespace Scalpel.Pruning.Training;

/// <summary>
/// When a retraining step may stop before its last epoch, from the validation score after each epoch: once the
/// score is at least <paramref name="clear"/> above the budget's floor (the step will be accepted, and the next
/// step trains on from these weights), once it rose less than <paramref name="plateau"/> over the last epoch (the
/// loss has settled: more epochs, at the cosine schedule's smaller learning rates, would not change the decision
/// either way), or once it is more than
/// <paramref name="giveUp"/> below the floor (the step will be rejected: the last epochs of a step recover far
/// less than that). Scores and margins are fractions (0.001 is a tenth of a point).
/// </summary>
public sealed class EarlyStopping(double floor, double plateau, double giveUp, double clear)
{
    /// <summary>The validation score after each epoch so far.</summary>
    public List<double> Scores { get; } = [];

    /// <summary>Why training stopped early, or null.</summary>
    public string? Reason { get; private set; }

    /// <summary>Records the score after an epoch; false: stop now.</summary>
    public bool Continue(double score)
    {
        Scores.Add(score);
        bool settled = Scores.Count >= 2 && score - Scores[^2] < plateau;
        if (score >= floor + clear) Reason = "clearly within budget";
        else if (score >= floor && settled) Reason = "within budget and settled";
        else if (score < floor - giveUp) Reason = "far over budget";
        else if (settled) Reason = "over budget and settled";
        return Reason is null;
    }
}
