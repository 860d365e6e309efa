using Dapper;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Tests;

public sealed class MigrationTests
{
    [Fact]
    public async Task NodesStartingTogetherApplyEachMigrationOnce()
    {
        string database = await PostgresServer.CreateDatabaseAsync();
        var dataSources = Enumerable.Range(0, 4).Select(_ => NpgsqlDataSource.Create(database)).ToList();

        await Task.WhenAll(dataSources.Select(ds =>
            Task.Run(() => new DatabaseMigrator(ds, new OperationsDatabase(database), [], NullLogger<DatabaseMigrator>.Instance)
                .MigrateAsync(CancellationToken.None))));

        await using var connection = new NpgsqlConnection(database);
        var scripts = (await connection.QueryAsync<string>("SELECT scriptname FROM schema_migrations")).ToList();
        Assert.Equal(scripts.Distinct().Count(), scripts.Count);
        Assert.Contains(scripts, s => s.EndsWith("0001_create_operations.sql", StringComparison.Ordinal));
        Assert.Equal(1, await connection.ExecuteScalarAsync<int>("SELECT count(*) FROM pg_tables WHERE tablename = 'operations'"));

        foreach (var dataSource in dataSources)
        {
            await dataSource.DisposeAsync();
        }
    }
}
