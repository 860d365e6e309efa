using System.Collections.Frozen;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Npgsql;
using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;
using PollingApi.Operations.Telemetry;
using Quartz;

namespace PollingApi.Operations.Lifecycle;

/// <summary>What this node knows about each kind's recent run time and queue depth, refreshed every few seconds.</summary>
internal sealed class OperationStatistics
{
    private FrozenDictionary<string, KindStatistics> _byKind = FrozenDictionary<string, KindStatistics>.Empty;
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

    private IEnumerable<KindStatistics> Kinds()
    {
        var known = _byKind;
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

    public KindStatistics? For(string kind) => _byKind.GetValueOrDefault(kind);

    internal void Replace(IEnumerable<KindStatistics> statistics) =>
        _byKind = statistics.ToFrozenDictionary(s => s.Kind, StringComparer.Ordinal);
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
        statistics.Replace(await store.ReadKindStatisticsAsync(now, now - Window, cancellationToken).ConfigureAwait(false));
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Refreshing operation statistics failed")]
    private partial void LogFailed(Exception exception);
}
