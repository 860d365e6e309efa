using System.Collections.Frozen;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Npgsql;
using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;
using PollingApi.Operations.Telemetry;
using Quartz;

namespace PollingApi.Operations.Lifecycle;

/// <summary>
/// What this node knows about each kind's recent run time, completion rate and queue, and about what each tenant runs,
/// refreshed every few seconds. Read by every answer that shows a pending operation (<c>Retry-After</c>, the queue
/// estimate) without a query of its own.
/// </summary>
internal sealed class OperationStatistics
{
    private volatile Snapshot _snapshot = Snapshot.Empty;
    private readonly CommandRegistry _commands;
    private readonly TimeProvider _timeProvider;

    /// <summary>Serves the queue gauges from the refreshed statistics: every registered kind, and any other kind still queued.</summary>
    public OperationStatistics(CommandRegistry commands, TimeProvider timeProvider, OperationMetrics metrics)
    {
        _commands = commands;
        _timeProvider = timeProvider;
        metrics.Meter.CreateObservableGauge("pollingapi.operations.queued", ObserveQueued, "{operation}",
            "Operations pending (due or waiting for a retry) and running, cluster-wide, per kind; refreshed every 5 s by API nodes.");
        metrics.Meter.CreateObservableGauge("pollingapi.operations.oldest_pending_age", ObserveOldestPendingAge, "s",
            "How long the longest-waiting due operation has waited, per kind (0 when none is due).");
    }

    /// <summary>When the statistics were read; null until the first read succeeds.</summary>
    public DateTime? ReadAt => _snapshot.ReadAt;

    private IEnumerable<KindStatistics> Kinds()
    {
        var known = _snapshot.ByKind;
        return known.Values.Concat(_commands.All.Where(c => !known.ContainsKey(c.Kind)).Select(c => new KindStatistics { Kind = c.Kind }));
    }

    private IEnumerable<Measurement<long>> ObserveQueued() => Kinds().SelectMany(kind => new[]
    {
        new Measurement<long>(kind.PendingAll, new("kind", kind.Kind), new("status", OperationStatus.Pending)),
        new Measurement<long>(kind.Running, new("kind", kind.Kind), new("status", OperationStatus.Running)),
    });

    private IEnumerable<Measurement<double>> ObserveOldestPendingAge()
    {
        var now = _timeProvider.GetUtcNow().UtcDateTime;
        return Kinds().Select(kind => new Measurement<double>(
            kind.OldestDueAt is { } due ? Math.Max(0, (now - due).TotalSeconds) : 0, new KeyValuePair<string, object?>("kind", kind.Kind)));
    }

    /// <summary>The kind as the last read saw it; null when it had nothing pending, running or recently ended (or before the first read).</summary>
    public KindStatistics? For(string kind) => _snapshot.ByKind.GetValueOrDefault(kind);

    /// <summary>How many of <paramref name="tenant"/>'s operations ran at the last read, across kinds.</summary>
    public long RunningOf(string tenant) => _snapshot.RunningByTenant.GetValueOrDefault(tenant);

    internal void Replace(QueueStatistics statistics, DateTime readAt) => _snapshot = new Snapshot(
        statistics.Kinds.ToFrozenDictionary(s => s.Kind, StringComparer.Ordinal),
        statistics.Tenants.ToFrozenDictionary(t => t.Owner, t => t.Running, StringComparer.Ordinal),
        readAt);

    /// <summary>One read, swapped in whole so that an answer never mixes two.</summary>
    private sealed record Snapshot(FrozenDictionary<string, KindStatistics> ByKind, FrozenDictionary<string, long> RunningByTenant, DateTime? ReadAt)
    {
        public static readonly Snapshot Empty = new(FrozenDictionary<string, KindStatistics>.Empty, FrozenDictionary<string, long>.Empty, null);
    }
}

/// <summary>Reads <see cref="OperationStatistics"/> from the database: one bounded query every few seconds per node.</summary>
[DisallowConcurrentExecution]
internal sealed partial class StatisticsRefreshJob(
    OperationStore store,
    OperationStatistics statistics,
    DatabaseStartupGate startup,
    TimeProvider timeProvider,
    ILogger<StatisticsRefreshJob> logger) : IJob
{
    public static readonly JobKey Key = new("statistics-refresh", "operations");

    private static readonly TimeSpan Window = TimeSpan.FromMinutes(5);

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
    {
        if (!startup.IsOpen)
        {
            // The node has not migrated its database yet: the next run, after it has, does the work.
            return;
        }

        try
        {
            await RefreshAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (NpgsqlException ex)
        {
            LogFailed(ex);
        }
    }

    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow().UtcDateTime;
        statistics.Replace(await store.ReadQueueStatisticsAsync(now, now - Window, cancellationToken).ConfigureAwait(false), now);
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Refreshing operation statistics failed")]
    private partial void LogFailed(Exception exception);
}
