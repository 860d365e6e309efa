using Npgsql;
using PollingApi.LocalPostgres;

namespace PollingApi.Operations.Tests.Infrastructure;

/// <summary>
/// The PostgreSQL server the tests use: the one named by <c>POLLINGAPI_TEST_POSTGRES</c> (a superuser
/// connection string), or else a throwaway local cluster started once for the test run.
/// </summary>
public static class PostgresServer
{
    public const string EnvironmentVariable = "POLLINGAPI_TEST_POSTGRES";

    private static readonly Lazy<Task<string>> AdminConnectionString = new(StartAsync);
    private static LocalPostgresCluster? _cluster;

    /// <summary>Creates an empty database and returns its connection string.</summary>
    public static async Task<string> CreateDatabaseAsync()
    {
        string admin = await AdminConnectionString.Value;
        string name = $"ops_test_{Guid.NewGuid():N}";
        await using (var connection = new NpgsqlConnection(admin))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await command.ExecuteNonQueryAsync();
        }

        return new NpgsqlConnectionStringBuilder(admin) { Database = name }.ConnectionString;
    }

    private static async Task<string> StartAsync()
    {
        string? configured = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return configured;
        }

        _cluster = await LocalPostgresCluster.StartAsync();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => _cluster.DisposeAsync().AsTask().GetAwaiter().GetResult();
        return _cluster.ConnectionString;
    }
}
