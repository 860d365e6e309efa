using Npgsql;
using PollingApi.LocalPostgres;

namespace PollingApi.Testing;

/// <summary>
/// The PostgreSQL server the tests use: the one named by <c>POLLINGAPI_TEST_POSTGRES</c> (a superuser connection
/// string), or else one throwaway local cluster started on first use and stopped after the last test.
/// Every factory gets a fresh database of its own, so test classes never see each other's rows.
/// </summary>
public static class PostgresServer
{
    public const string EnvironmentVariable = "POLLINGAPI_TEST_POSTGRES";

    private static readonly Lazy<Task<string>> AdminConnectionString = new(StartAsync);
    private static LocalPostgresCluster? _cluster;

    /// <summary>Creates an empty database named <c>pollingapi_&lt;random&gt;</c> and returns its connection string.</summary>
    public static async Task<string> CreateDatabaseAsync()
    {
        string admin = await AdminConnectionString.Value;
        string name = $"pollingapi_{Guid.NewGuid():N}";
        await using (var connection = new NpgsqlConnection(admin))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await command.ExecuteNonQueryAsync();
        }

        return new NpgsqlConnectionStringBuilder(admin) { Database = name }.ConnectionString;
    }

    /// <summary>Drops a database made by <see cref="CreateDatabaseAsync"/>, ending any session still connected to it.</summary>
    public static async Task DropDatabaseAsync(string connectionString)
    {
        string name = new NpgsqlConnectionStringBuilder(connectionString).Database
                      ?? throw new ArgumentException("The connection string names no database.", nameof(connectionString));
        if (!name.StartsWith("pollingapi_", StringComparison.Ordinal))
        {
            throw new ArgumentException($"Refusing to drop '{name}': the tests only drop databases they created.", nameof(connectionString));
        }

        await using (var pooled = new NpgsqlConnection(connectionString))
        {
            NpgsqlConnection.ClearPool(pooled);
        }

        await using var connection = new NpgsqlConnection(await AdminConnectionString.Value);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS {name} WITH (FORCE)", connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<string> StartAsync()
    {
        string? configured = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return configured;
        }

        // A test database is thrown away after the run: it need not survive a power cut.
        _cluster = await LocalPostgresCluster.StartAsync(durable: false);
        return _cluster.ConnectionString;
    }

    /// <summary>
    /// Stops the throwaway cluster (if this run started one) and deletes its files. Called once, after the last
    /// test, by <see cref="PostgresTestFramework"/>: a ProcessExit handler is too late, the test host is killed
    /// soon after the run ends.
    /// </summary>
    public static async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _cluster, null) is { } cluster)
        {
            await cluster.DisposeAsync();
        }
    }
}
