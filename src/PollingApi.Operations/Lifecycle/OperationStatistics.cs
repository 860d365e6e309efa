using System.Collections.Frozen;
using Microsoft.Extensions.Logging;
using Npgsql;
using PollingApi.Operations.Storage;
using Quartz;

namespace PollingApi.Operations.Lifecycle;

/// <summary>What this node knows about each kind's recent run time and queue depth, refreshed every few seconds.</summary>
internal sealed class OperationStatistics
{
    private FrozenDictionary<string, KindStatistics> _byKind = FrozenDictionary<string, KindStatistics>.Empty;

    public KindStatistics? For(string kind) => _byKind.GetValueOrDefault(kind);

    internal void Replace(IEnumerable<KindStatistics> statistics) =>
        _byKind = statistics.ToFrozenDictionary(s => s.Kind, StringComparer.Ordinal);
}

/// <summary>Reads <see cref="OperationStatistics"/> from the database: one bounded query every few seconds per node.</summary>
[DisallowConcurrentExecution]
internal sealed partial class StatisticsRefreshJob(
    OperationStore store,
    OperationStatistics statistics,
    TimeProvider timeProvider,
    ILogger<StatisticsRefreshJob> logger) : IJob
{
    public static readonly JobKey Key = new("statistics-refresh", "operations");

    private static readonly TimeSpan Window = TimeSpan.FromMinutes(5);

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
    {
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
