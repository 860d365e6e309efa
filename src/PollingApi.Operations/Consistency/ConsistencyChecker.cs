using Microsoft.Extensions.Logging;
using Npgsql;
using PollingApi.Operations.Storage;
using PollingApi.Operations.Telemetry;
using Quartz;

namespace PollingApi.Operations.Consistency;

/// <summary>
/// Runs every registered <see cref="IConsistencyCheck"/>. What the last run on this node found is served as the
/// <c>pollingapi_consistency_findings</c> gauge (see <see cref="OperationMetrics"/>), per check: a check that found
/// something before and nothing now reads 0.
/// </summary>
internal sealed class ConsistencyChecker
{
    private readonly IEnumerable<IConsistencyCheck> _checks;
    private readonly TimeProvider _timeProvider;
    private readonly OperationMetrics _metrics;

    public ConsistencyChecker(IEnumerable<IConsistencyCheck> checks, TimeProvider timeProvider, OperationMetrics metrics)
    {
        _checks = checks;
        _timeProvider = timeProvider;
        _metrics = metrics;
    }

    public async Task<ConsistencyReport> RunAsync(CancellationToken cancellationToken)
    {
        var findings = new List<ConsistencyFinding>();
        foreach (var check in _checks)
        {
            findings.AddRange(await check.RunAsync(cancellationToken).ConfigureAwait(false));
        }

        var counts = _metrics.ChecksWithFindings.ToDictionary(check => check, _ => 0, StringComparer.Ordinal);
        foreach (var finding in findings)
        {
            counts[finding.Check] = counts.GetValueOrDefault(finding.Check) + 1;
        }

        _metrics.ConsistencyChecked(counts);
        return new ConsistencyReport(_timeProvider.GetUtcNow().UtcDateTime, findings);
    }
}

/// <summary>Runs the consistency checks on one node of the cluster at a time and logs what they find.</summary>
[DisallowConcurrentExecution]
internal sealed partial class ConsistencyCheckJob(NpgsqlDataSource dataSource, ConsistencyChecker checker, DatabaseStartupGate startup,
    ILogger<ConsistencyCheckJob> logger) : IJob
{
    public static readonly JobKey Key = new("consistency-check", "operations");

    private const long LockKey = 0x506f6c6c_436f6e73;

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
    {
        if (!startup.IsOpen)
        {
            // The node has not migrated its database yet: the next run, after it has, does the work.
            return;
        }

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
