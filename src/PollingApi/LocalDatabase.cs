using PollingApi.LocalPostgres;

namespace PollingApi;

/// <summary>
/// Finds the operations database: the configured <c>ConnectionStrings:Operations</c>, or else a throwaway local
/// PostgreSQL cluster started for this process (development only; its data is deleted when the process stops).
/// </summary>
internal static class LocalDatabase
{
    public const string ConnectionStringName = "Operations";

    public static async Task<(string ConnectionString, LocalPostgresCluster? Cluster)> ResolveAsync(
        IConfiguration configuration, CancellationToken cancellationToken)
    {
        string? configured = configuration.GetConnectionString(ConnectionStringName);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return (configured, null);
        }

        if (!LocalPostgresCluster.IsAvailable)
        {
            throw new InvalidOperationException(
                "No connection string is configured (set ConnectionStrings__Operations) and no PostgreSQL server binaries " +
                "(initdb, pg_ctl) were found to start a throwaway local cluster.");
        }

        var cluster = await LocalPostgresCluster.StartAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        Console.WriteLine($"Started a throwaway PostgreSQL cluster on 127.0.0.1:{cluster.Port}; it is deleted when the API stops.");
        return (cluster.ConnectionString, cluster);
    }
}
