using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;

namespace PollingApi.Operations.Consistency;

/// <summary>
/// The engine's own checks: operations running well past their lease (lease rescue is not running) and
/// operations pending far past when they fell due (no worker is taking work).
/// </summary>
internal sealed class OperationConsistencyCheck(NpgsqlDataSource dataSource, IOptions<OperationsOptions> options, TimeProvider timeProvider)
    : IConsistencyCheck
{
    public async Task<IReadOnlyList<ConsistencyFinding>> RunAsync(CancellationToken cancellationToken)
    {
        const string RunningPastLease = """
            SELECT id FROM operations WHERE status = 'running' AND locked_until < @before ORDER BY locked_until LIMIT 100
            """;
        const string PendingPastAge = """
            SELECT id FROM operations WHERE status = 'pending' AND next_attempt_at < @before ORDER BY next_attempt_at LIMIT 100
            """;
        var settings = options.Value;
        var now = timeProvider.GetUtcNow().UtcDateTime;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var findings = new List<ConsistencyFinding>();

        // Lease rescue gets a few of its intervals to act before an expired lease counts as a hole.
        var overdueLeases = (await connection.QueryAsync<Guid>(new CommandDefinition(RunningPastLease,
            new { before = now - settings.LeaseRescueInterval * 3 }, cancellationToken: cancellationToken)).ConfigureAwait(false)).AsList();
        if (overdueLeases.Count > 0)
        {
            findings.Add(new ConsistencyFinding("running-past-lease",
                $"{overdueLeases.Count} operations are running with a lease that expired more than {settings.LeaseRescueInterval * 3} ago.",
                overdueLeases,
                "Check that the lease-rescue job runs (it needs a node with the database reachable); it returns them to pending."));
        }

        var stalePending = (await connection.QueryAsync<Guid>(new CommandDefinition(PendingPastAge,
            new { before = now - settings.PendingAlertAge }, cancellationToken: cancellationToken)).ConfigureAwait(false)).AsList();
        if (stalePending.Count > 0)
        {
            findings.Add(new ConsistencyFinding("pending-past-age",
                $"{stalePending.Count} operations have been due for more than {settings.PendingAlertAge} without a worker taking them.",
                stalePending,
                "Check that worker nodes (Operations:Role All or Worker) are running and can reach the database, or add workers."));
        }

        return findings;
    }
}
