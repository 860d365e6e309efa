using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;

namespace PollingApi.Operations.Storage;

/// <summary>Ready when the operations database answers a query.</summary>
internal sealed class DatabaseHealthCheck(NpgsqlDataSource dataSource) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
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

/// <summary>Applies the migrations before the worker and the API start.</summary>
internal sealed class DatabaseMigrationService(DatabaseMigrator migrator) : Microsoft.Extensions.Hosting.IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => migrator.MigrateAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
