using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;

namespace PollingApi.Operations.Storage;

/// <summary>Ready once the node has reached its database and migrated it at start-up, and while the database answers a query.</summary>
internal sealed class DatabaseHealthCheck(NpgsqlDataSource dataSource, DatabaseStartupGate startup) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!startup.IsOpen)
        {
            return HealthCheckResult.Unhealthy("The node is starting: it has not reached the operations database and applied its migrations yet.");
        }

        try
        {
            await using var command = dataSource.CreateCommand("SELECT 1");
            await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
            return HealthCheckResult.Healthy();
        }
        catch (Exception ex) when (DatabaseFailure.IsUnavailable(ex))
        {
            return HealthCheckResult.Unhealthy("The operations database cannot be reached.");
        }
    }
}
