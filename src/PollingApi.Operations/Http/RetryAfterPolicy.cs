using Microsoft.Extensions.Options;
using PollingApi.Operations.Lifecycle;
using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Http;

/// <summary>
/// How long a poller should wait before asking again, in whole seconds, from what the server knows: the kind's
/// mean run time over the last minutes, how many operations of the kind are queued, and when a scheduled retry
/// falls due. Always within [<see cref="OperationsOptions.RetryAfterMin"/>, <see cref="OperationsOptions.RetryAfterMax"/>],
/// so never 0 and never absurd.
/// </summary>
internal sealed class RetryAfterPolicy(IOptions<OperationsOptions> options, OperationStatistics statistics, TimeProvider timeProvider)
{
    public int SecondsFor(OperationRow row)
    {
        var settings = options.Value;
        var now = timeProvider.GetUtcNow().UtcDateTime;
        var kind = statistics.For(row.Kind);
        double meanRun = kind?.MeanRunSeconds ?? 0;

        double seconds = row.Status switch
        {
            // Running: what remains of a typical run.
            OperationStatus.Running when row.StartedAt is { } started => meanRun - (now - started).TotalSeconds,
            // Pending: until it is due, plus the queue ahead of it spread over this node's handler slots, plus its own run.
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
