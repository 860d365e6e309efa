using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;
using PollingApi.Operations.Worker;

namespace PollingApi.Operations.Lifecycle;

/// <summary>
/// Tells why a pending operation is waiting, about how many due operations of its kind are claimed before it, and when
/// it is expected to start, from what this node already holds: the last <see cref="OperationStatistics"/> read and the
/// kinds' settings (<see cref="KindSettingsCache"/>). No answer costs a query.
/// </summary>
/// <remarks>
/// <para>Position: the statistics know how many operations of the kind were due when they were read, and the claim keys
/// (due time moved earlier by the priority, <c>operations_claim_key</c>) of the first and the last of them. An operation's
/// place among them is estimated by where its own claim key falls between those two, as though the due operations were
/// spread evenly over that span; those claimed since the read, at the kind's rate, are taken off. The claim goes by claim
/// key across tenants whenever it has room for fewer operations than there are tenants waiting, as on a busy cluster;
/// when it has room for more, it takes turns between tenants and an operation of a tenant with a short queue starts
/// sooner than its position says.</para>
/// <para>Rate: how many operations of the kind ended per second over the last minute; when none did, what is running
/// over the mean run time. A kind with a cap never goes faster than its cap over the mean run time.</para>
/// <para>Start: now when nothing is ahead, else after the operations ahead have been claimed at that rate (one more
/// for an operation held back by a cap, which waits for a place to free up); never before it falls due. An operation
/// that is not due yet has ahead of it only the due operations that the rate will not have worked off by its time.</para>
/// </remarks>
internal sealed class OperationQueueEstimator(OperationStatistics statistics, KindSettingsCache kinds, TimeProvider timeProvider)
{
    /// <summary>The estimate for <paramref name="row"/>; null unless it is pending.</summary>
    public OperationQueue? For(OperationRow row)
    {
        ArgumentNullException.ThrowIfNull(row);
        if (row.Status != OperationStatus.Pending)
        {
            return null;
        }

        return Estimate(row, timeProvider.GetUtcNow().UtcDateTime, statistics.ReadAt, statistics.For(row.Kind), kinds.For(row.Kind),
            kinds.ClaimRules.TenantCapOf(row.Owner), statistics.RunningOf(row.Owner));
    }

    /// <summary>
    /// The estimate for a pending <paramref name="row"/> at <paramref name="now"/>, from statistics read at
    /// <paramref name="readAt"/> (null: never read, so no start is estimated) that saw <paramref name="kind"/> (null: nothing
    /// of the kind pending, running or ended lately), the kind's <paramref name="settings"/>, and the tenant's cap and
    /// what it runs.
    /// </summary>
    internal static OperationQueue Estimate(OperationRow row, DateTime now, DateTime? readAt, KindStatistics? kind, KindSettings settings,
        int? tenantCap, long tenantRunning)
    {
        bool due = row.NextAttemptAt <= now;
        var reason = settings.Paused ? OperationQueueReason.Paused
            : !due ? row.Attempts == 0 ? OperationQueueReason.Scheduled : OperationQueueReason.RetryBackoff
            : (settings.MaxConcurrency is { } kindCap && (kind?.Running ?? 0) >= kindCap) || (tenantCap is { } cap && tenantRunning >= cap)
                ? OperationQueueReason.ConcurrencyLimit
                : OperationQueueReason.Queued;

        if (readAt is not { } read)
        {
            return new OperationQueue(0, reason, null);
        }

        double? rate = Rate(kind, settings.MaxConcurrency);
        double ahead = kind is null ? 0 : AheadWhenRead(row, read, kind);
        if (rate is { } claimedPerSecond && now > read)
        {
            ahead = Math.Max(0, ahead - claimedPerSecond * (now - read).TotalSeconds);
        }

        DateTime? start;
        if (reason == OperationQueueReason.Paused)
        {
            start = null;
        }
        else if (!due)
        {
            // What the rate works off before it falls due is no longer ahead then.
            if (rate is { } r)
            {
                ahead = Math.Max(0, ahead - r * (row.NextAttemptAt - now).TotalSeconds);
                start = After(row.NextAttemptAt, ahead / r);
            }
            else
            {
                start = ahead < 0.5 ? row.NextAttemptAt : null;
            }
        }
        else
        {
            double before = ahead + (reason == OperationQueueReason.ConcurrencyLimit ? 1 : 0);
            start = rate is { } r ? After(now, before / r) : before < 0.5 ? now : null;
        }

        return new OperationQueue((int)Math.Min(int.MaxValue, Math.Round(ahead)), reason,
            start is { } at ? Latest(CeilingToMillisecond(at), row.NextAttemptAt) : null);
    }

    /// <summary>How many operations of the kind are claimed per second: null when nothing tells.</summary>
    internal static double? Rate(KindStatistics? kind, int? maxConcurrency)
    {
        if (kind is null)
        {
            return null;
        }

        double meanRun = kind.MeanRunSeconds ?? 0;
        double? rate = kind.CompletionsPerSecond is { } ended && ended > 0 ? ended
            : kind.Running > 0 && meanRun > 0 ? kind.Running / meanRun
            : null;
        return rate is { } r && maxConcurrency is { } cap && meanRun > 0 ? Math.Min(r, cap / meanRun) : rate;
    }

    /// <summary>Of the operations due when the statistics were read, about how many come before <paramref name="row"/> in claim order.</summary>
    private static double AheadWhenRead(OperationRow row, DateTime readAt, KindStatistics kind)
    {
        // Counted among them if it was already pending and due then.
        bool counted = row.NextAttemptAt <= readAt && row.UpdatedAt <= readAt;
        long others = Math.Max(0, kind.Pending - (counted ? 1 : 0));
        if (others == 0 || kind.FirstDueKey is not { } first || kind.LastDueKey is not { } last)
        {
            return 0;
        }

        var key = row.NextAttemptAt.AddMinutes(-row.Priority);
        double share = key <= first ? 0
            : key >= last ? 1
            : (key - first) / (last - first);
        return share * others;
    }

    /// <summary><paramref name="seconds"/> after <paramref name="from"/>; null beyond <see cref="Horizon"/>, where an estimate means nothing.</summary>
    private static DateTime? After(DateTime from, double seconds) =>
        seconds <= Horizon.TotalSeconds ? from.AddSeconds(Math.Max(0, seconds)) : null;

    /// <summary>The furthest ahead a start is estimated.</summary>
    internal static readonly TimeSpan Horizon = TimeSpan.FromDays(365);

    private static DateTime CeilingToMillisecond(DateTime at)
    {
        long remainder = at.Ticks % TimeSpan.TicksPerMillisecond;
        return remainder == 0 ? at : new DateTime(at.Ticks - remainder + TimeSpan.TicksPerMillisecond, DateTimeKind.Utc);
    }

    private static DateTime Latest(DateTime a, DateTime b) => a >= b ? a : b;
}
