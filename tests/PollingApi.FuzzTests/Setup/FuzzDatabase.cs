using Npgsql;
using PollingApi.LocalPostgres;

namespace PollingApi.FuzzTests.Setup;

/// <summary>The run's own database in the throwaway cluster.</summary>
internal static class FuzzDatabase
{
    public const string Name = "fuzz";

    /// <summary>Creates the database and returns the connection string the API and the key command are given.</summary>
    public static async Task<string> CreateAsync(LocalPostgresCluster cluster, CancellationToken cancellationToken)
    {
        var admin = new NpgsqlConnectionStringBuilder(cluster.ConnectionString) { Pooling = false };
        await using (var connection = new NpgsqlConnection(admin.ConnectionString))
        {
            await connection.OpenAsync(cancellationToken);
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{Name}\"", connection);
            await create.ExecuteNonQueryAsync(cancellationToken);
        }

        return new NpgsqlConnectionStringBuilder(cluster.ConnectionStringFor(Name)) { MaxPoolSize = 50 }.ConnectionString;
    }
}
