using System.ComponentModel;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Http;

/// <summary>The answer of <c>GET /v1/admin/stats</c>.</summary>
[Description("What every kind of operation is doing, cluster-wide, for operators.")]
internal sealed record AdminStats(
    [property: Description("When the numbers were read.")] DateTime GeneratedAt,
    [property: Description("The window of the succeeded, failed, run-time and throughput figures, in seconds (300).")] int WindowSeconds,
    [property: Description("One entry per kind: every registered kind, and any other kind still in the table.")] IReadOnlyList<KindStats> Kinds,
    [property: Description("Completions of every kind per 30-second interval of the window, oldest first (10 intervals).")] IReadOnlyList<ThroughputBucket> Throughput)
{
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(5);

    public static readonly TimeSpan BucketLength = TimeSpan.FromSeconds(30);

    internal static async Task<Ok<AdminStats>> ReadAsync(AdminStatsReader reader, CancellationToken cancellationToken) =>
        TypedResults.Ok(await reader.ReadAsync(cancellationToken).ConfigureAwait(false));
}

/// <summary>One kind's figures.</summary>
[Description("One kind of operation: its queue now, and what finished in the window.")]
internal sealed record KindStats(
    [property: Description("The command kind.")] string Kind,
    [property: Description("Pending and due now.")] long Pending,
    [property: Description("Running now.")] long Running,
    [property: Description("Pending, waiting for a retry's backoff.")] long ScheduledRetries,
    [property: Description("Succeeded within the window.")] long Succeeded,
    [property: Description("Failed within the window.")] long Failed,
    [property: Description("How long the longest-waiting due operation has waited, in seconds; 0 when none is due.")] double OldestPendingAgeSeconds,
    [property: Description("Median run time of the window's successes (last attempt), in seconds; null without successes.")] double? RunTimeP50Seconds,
    [property: Description("95th percentile of the same; null without successes.")] double? RunTimeP95Seconds)
{
    internal static KindStats From(string kind, KindActivityRow? row, DateTime now) => row is null
        ? new KindStats(kind, 0, 0, 0, 0, 0, 0, null, null)
        : new KindStats(kind, row.Pending, row.Running, row.ScheduledRetries, row.Succeeded, row.Failed,
            row.OldestDueAt is { } due ? Math.Max(0, (now - due).TotalSeconds) : 0, row.RunP50, row.RunP95);
}

/// <summary>Completions in one interval.</summary>
[Description("How many operations finished in one interval of the window.")]
internal sealed record ThroughputBucket(
    [property: Description("When the interval starts.")] DateTime Start,
    [property: Description("Its length in seconds (30).")] int Seconds,
    [property: Description("Operations that succeeded in it.")] long Succeeded,
    [property: Description("Operations that failed in it.")] long Failed);

/// <summary>
/// Reads <see cref="AdminStats"/> at most once per <see cref="Freshness"/> on this node, however many dashboards and
/// scrapers ask: the figures count what finished in the last five minutes, which is not free on a busy table.
/// </summary>
internal sealed class AdminStatsReader(OperationStore store, CommandRegistry commands, TimeProvider timeProvider) : IDisposable
{
    public static readonly TimeSpan Freshness = TimeSpan.FromSeconds(1);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private AdminStats? _latest;
    private long _readAt;

    public async Task<AdminStats> ReadAsync(CancellationToken cancellationToken)
    {
        if (Fresh() is { } fresh)
        {
            return fresh;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (Fresh() is { } readMeanwhile)
            {
                return readMeanwhile;
            }

            long startedAt = timeProvider.GetTimestamp();
            var stats = await ReadNowAsync(cancellationToken).ConfigureAwait(false);
            (_latest, _readAt) = (stats, startedAt);
            return stats;
        }
        finally
        {
            _gate.Release();
        }
    }

    private AdminStats? Fresh() =>
        _latest is { } latest && timeProvider.GetElapsedTime(_readAt) < Freshness ? latest : null;

    private async Task<AdminStats> ReadNowAsync(CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow().UtcDateTime;
        var since = now - AdminStats.Window;
        var rows = (await store.ReadKindActivityAsync(now, since, cancellationToken).ConfigureAwait(false)).ToDictionary(r => r.Kind);
        var kinds = rows.Keys.Union(commands.All.Select(c => c.Kind)).Order(StringComparer.Ordinal)
            .Select(kind => KindStats.From(kind, rows.GetValueOrDefault(kind), now))
            .ToList();

        var counted = (await store.ReadThroughputAsync(since, now, AdminStats.BucketLength, cancellationToken).ConfigureAwait(false))
            .ToDictionary(r => r.Bucket);
        int buckets = (int)(AdminStats.Window / AdminStats.BucketLength);
        var throughput = Enumerable.Range(0, buckets)
            .Select(i => counted.GetValueOrDefault(i) is { } row
                ? new ThroughputBucket(since + i * AdminStats.BucketLength, (int)AdminStats.BucketLength.TotalSeconds, row.Succeeded, row.Failed)
                : new ThroughputBucket(since + i * AdminStats.BucketLength, (int)AdminStats.BucketLength.TotalSeconds, 0, 0))
            .ToList();
        return new AdminStats(now, (int)AdminStats.Window.TotalSeconds, kinds, throughput);
    }

    public void Dispose() => _gate.Dispose();
}
