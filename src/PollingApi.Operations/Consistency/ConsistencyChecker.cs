using Microsoft.Extensions.Logging;
using Npgsql;
using PollingApi.Operations.Storage;
using Quartz;

namespace PollingApi.Operations.Consistency;

/// <summary>Runs every registered <see cref="IConsistencyCheck"/>.</summary>
internal sealed class ConsistencyChecker(IEnumerable<IConsistencyCheck> checks, TimeProvider timeProvider)
{
    public async Task<ConsistencyReport> RunAsync(CancellationToken cancellationToken)
    {
        var findings = new List<ConsistencyFinding>();
        foreach (var check in checks)
        {
            findings.AddRange(await check.RunAsync(cancellationToken).ConfigureAwait(false));
        }

        return new ConsistencyReport(timeProvider.GetUtcNow().UtcDateTime, findings);
    }
}

/// <summary>Runs the consistency checks on one node of the cluster at a time and logs what they find.</summary>
[DisallowConcurrentExecution]
internal sealed partial class ConsistencyCheckJob(NpgsqlDataSource dataSource, ConsistencyChecker checker, ILogger<ConsistencyCheckJob> logger)
    : IJob
{
    public static readonly JobKey Key = new("consistency-check", "operations");

    private const long LockKey = 0x506f6c6c_436f6e73;

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
    {
        try
        {
            await using var clusterLock = await ClusterLock.TryAcquireAsync(dataSource, LockKey, cancellationToken).ConfigureAwait(false);
            if (clusterLock is null)
            {
                return;
            }

            var report = await checker.RunAsync(cancellationToken).ConfigureAwait(false);
            foreach (var finding in report.Findings)
            {
                LogFinding(finding.Check, finding.Description, finding.Action, string.Join(',', finding.Ids));
            }
        }
        catch (NpgsqlException ex)
        {
            LogFailed(ex);
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Consistency check {Check}: {Description} Action: {Action} Ids: {Ids}")]
    private partial void LogFinding(string check, string description, string action, string ids);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Consistency check failed to run")]
    private partial void LogFailed(Exception exception);
}
