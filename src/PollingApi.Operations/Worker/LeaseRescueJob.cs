using Microsoft.Extensions.Logging;
using Npgsql;
using PollingApi.Operations.Storage;
using Quartz;
using PollingApi.Operations.Model;
using PollingApi.Operations.Telemetry;

namespace PollingApi.Operations.Worker;

/// <summary>
/// Returns operations whose worker stopped renewing its lease (it crashed, hung or lost the database) to
/// <c>pending</c>, or ends them <c>failed</c> when their attempts are used up. Runs on one node at a time.
/// </summary>
[DisallowConcurrentExecution]
internal sealed partial class LeaseRescueJob(
    NpgsqlDataSource dataSource,
    AttemptStore store,
    IOperationSignals signals,
    DatabaseStartupGate startup,
    TimeProvider timeProvider,
    DatabaseClock clock,
    OperationMetrics metrics,
    ILogger<LeaseRescueJob> logger) : IJob
{
    public static readonly JobKey Key = new("lease-rescue", "operations");

    private const long LockKey = 0x506f6c6c_52657363;
    private const int BatchSize = 500;

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
    {
        // Until the node has migrated its database, and knows how far its clock is off the database's (a lease is
        // expired by the database's time), it judges none: the next run does the work.
        if (!startup.IsOpen || !clock.IsSynchronised)
        {
            return;
        }

        try
        {
            int rescued = await RescueAsync(cancellationToken).ConfigureAwait(false);
            if (rescued > 0)
            {
                LogRescued(rescued);
                signals.Pending();
            }
        }
        catch (NpgsqlException ex)
        {
            // The next run tries again; nothing is lost while the database is away.
            LogFailed(ex);
        }
    }

    /// <summary>Rescues every expired lease, in batches. Returns 0 when another node holds the job's lock.</summary>
    public async Task<int> RescueAsync(CancellationToken cancellationToken)
    {
        await using var clusterLock = await ClusterLock.TryAcquireAsync(dataSource, LockKey, cancellationToken).ConfigureAwait(false);
        if (clusterLock is null)
        {
            return 0;
        }

        int total = 0;
        IReadOnlyList<RescuedOperation> rescued;
        do
        {
            rescued = await store.RescueExpiredLeasesAsync(timeProvider.GetUtcNow().UtcDateTime, BatchSize, OperationErrors.LeaseExpired,
                    OperationErrors.Cancelled, OperationErrors.LeaseLost, cancellationToken)
                .ConfigureAwait(false);
            total += rescued.Count;
            var now = timeProvider.GetUtcNow().UtcDateTime;
            foreach (var operation in rescued)
            {
                bool ended = OperationStatus.IsTerminal(operation.Status);
                metrics.LeaseRescued(ended ? OperationStatus.Failed : OperationStatus.Pending);
                metrics.AttemptEnded(operation.Kind, AttemptOutcome.LeaseLost, startedTimestamp: 0);
                if (ended)
                {
                    metrics.Completed(operation.Kind, operation.Status, OperationExpiry.CreatedAt(operation.Id), now);
                    // This node's waiters too, not only through the echo of the notification.
                    signals.Finished(operation.Id);
                }
                else
                {
                    signals.Changed(operation.Id);
                }
            }
        }
        while (rescued.Count == BatchSize);

        return total;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Rescued {Count} operations whose lease expired")]
    private partial void LogRescued(int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Lease rescue failed")]
    private partial void LogFailed(Exception exception);
}
