using Microsoft.Extensions.Options;
using PollingApi.Operations.Lifecycle;
using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Http;

/// <summary>
/// How long a poller should wait before asking again, in whole seconds, from what the server knows: for a running
/// operation, what remains of its kind's mean run time over the last minutes; for a pending one, until the queue estimate
/// (<see cref="OperationQueueEstimator"/>) expects it to start, plus that mean run time. Always within
/// [<see cref="OperationsOptions.RetryAfterMin"/>, <see cref="OperationsOptions.RetryAfterMax"/>], so never 0 and never absurd.
/// </summary>
internal sealed class RetryAfterPolicy(IOptions<OperationsOptions> options, OperationStatistics statistics, OperationQueueEstimator estimator,
    TimeProvider timeProvider)
{
    public int SecondsFor(OperationRow row) => SecondsFor(row, estimator.For(row));

    /// <summary>The advice for <paramref name="row"/>, pending with <paramref name="queue"/> as its estimate (null when not pending).</summary>
    public int SecondsFor(OperationRow row, OperationQueue? queue)
    {
        ArgumentNullException.ThrowIfNull(row);
        var settings = options.Value;
        var now = timeProvider.GetUtcNow().UtcDateTime;
        var kind = statistics.For(row.Kind);
        double meanRun = kind?.MeanRunSeconds ?? 0;

        double seconds = row.Status switch
        {
            // Running: what remains of a typical run.
            OperationStatus.Running when row.StartedAt is { } started => meanRun - (now - started).TotalSeconds,
            // Pending in a paused kind: nothing starts it until an operator resumes the kind.
            OperationStatus.Pending when queue?.Reason == OperationQueueReason.Paused => settings.RetryAfterMax.TotalSeconds,
            // Pending: until it is expected to start, plus its own run.
            OperationStatus.Pending when queue?.EstimatedStartAt is { } start => (start - now).TotalSeconds + meanRun,
            // Pending with no estimate: until it is due, plus the queue ahead of it spread over this node's handler slots, plus its own run.
            OperationStatus.Pending => Math.Max(0, (row.NextAttemptAt - now).TotalSeconds)
                                       + (kind?.Pending ?? 0) * meanRun / settings.MaxConcurrency
                                       + meanRun,
            _ => 0,
        };

        return Clamp(seconds);
    }

    /// <summary>The advice for a caller told that the database is unavailable.</summary>
    /// <summary>After a quota refusal: long enough for some of the tenant's operations to finish.</summary>
    public int SecondsWhenOverQuota() => Clamp(options.Value.RetryAfterMin.TotalSeconds * 5);

    public int SecondsWhenUnavailable() => Clamp(options.Value.RetryAfterMin.TotalSeconds * 5);

    private int Clamp(double seconds)
    {
        var settings = options.Value;
        double clamped = Math.Clamp(double.IsFinite(seconds) ? seconds : 0, settings.RetryAfterMin.TotalSeconds, settings.RetryAfterMax.TotalSeconds);
        return Math.Max(1, (int)Math.Ceiling(clamped));
    }
}
