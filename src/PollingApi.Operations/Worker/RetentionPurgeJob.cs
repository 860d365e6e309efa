using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using PollingApi.Operations.Storage;
using Quartz;

namespace PollingApi.Operations.Worker;

/// <summary>
/// Deletes operations that finished longer ago than <see cref="OperationsOptions.Retention"/>, in small batches so
/// that no transaction is long and the hot table stays small. Runs on one node at a time.
/// </summary>
[DisallowConcurrentExecution]
internal sealed partial class RetentionPurgeJob(
    NpgsqlDataSource dataSource,
    OperationStore store,
    IOptions<OperationsOptions> options,
    DatabaseStartupGate startup,
    TimeProvider timeProvider,
    ILogger<RetentionPurgeJob> logger) : IJob
{
    public static readonly JobKey Key = new("retention-purge", "operations");

    private const long LockKey = 0x506f6c6c_50757267;

    // Bounds one run, so a large backlog is worked off over several runs rather than in one long burst.
    private const int MaxBatchesPerRun = 100;

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
    {
        if (!startup.IsOpen)
        {
            // The node has not migrated its database yet: the next run, after it has, does the work.
            return;
        }

        try
        {
            int purged = await PurgeAsync(cancellationToken).ConfigureAwait(false);
            if (purged > 0)
            {
                LogPurged(purged, options.Value.Retention);
            }
        }
        catch (NpgsqlException ex)
        {
            LogFailed(ex);
        }
    }

    /// <summary>Purges expired operations; returns how many. 0 when another node holds the job's lock.</summary>
    public async Task<int> PurgeAsync(CancellationToken cancellationToken)
    {
        await using var clusterLock = await ClusterLock.TryAcquireAsync(dataSource, LockKey, cancellationToken).ConfigureAwait(false);
        if (clusterLock is null)
        {
            return 0;
        }

        var cutoff = timeProvider.GetUtcNow().UtcDateTime - options.Value.Retention;
        int batchSize = options.Value.PurgeBatchSize;
        int total = 0;
        for (int batch = 0; batch < MaxBatchesPerRun; batch++)
        {
            int purged = await store.PurgeCompletedAsync(cutoff, batchSize, cancellationToken).ConfigureAwait(false);
            total += purged;
            if (purged < batchSize)
            {
                break;
            }
        }

        return total;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Purged {Count} operations finished more than {Retention} ago")]
    private partial void LogPurged(int count, TimeSpan retention);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Retention purge failed")]
    private partial void LogFailed(Exception exception);
}
