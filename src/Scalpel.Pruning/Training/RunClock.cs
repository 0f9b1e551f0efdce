using System.Diagnostics;
using System.Globalization;

namespace Scalpel.Pruning.Training;

/// <summary>
/// Elapsed time and an estimate of what is left of a whole retraining run, for progress lines: the mean time of
/// the fits (retraining steps) so far times the fits the caller expects from here (each step of rising sparsity accepted at its first try).
/// </summary>
public sealed class RunClock
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private TimeSpan _fitting;
    private long _fitStart;

    public int Fits { get; private set; }
    public TimeSpan Elapsed => _clock.Elapsed;

    public void FitStarted() => _fitStart = Stopwatch.GetTimestamp();

    public void FitEnded()
    {
        _fitting += Stopwatch.GetElapsedTime(_fitStart);
        Fits++;
    }

    /// <summary>Mean time per fit so far (null before the first ends).</summary>
    public TimeSpan? PerFit => Fits == 0 ? null : _fitting / Fits;

    /// <summary>"1 min 20 s elapsed, about 3 min left (about 6 more steps of about 25 s)".</summary>
    public string Line(int fitsLeft)
    {
        string left = PerFit is not { } per ? "" : fitsLeft <= 0 ? ", finishing" :
            $", about {Format(per * fitsLeft)} left (about {fitsLeft} more step{(fitsLeft == 1 ? "" : "s")} of about {Format(per)})";
        return $"{Format(Elapsed)} elapsed{left}";
    }

    public static string Format(TimeSpan t) => t.TotalSeconds < 60
        ? string.Create(CultureInfo.InvariantCulture, $"{t.TotalSeconds:0} s")
        : string.Create(CultureInfo.InvariantCulture, $"{(int)t.TotalMinutes} min {t.Seconds} s");
}
