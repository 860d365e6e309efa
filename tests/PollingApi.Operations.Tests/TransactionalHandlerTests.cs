using Dapper;
using Npgsql;
using PollingApi.Operations.Tests.Infrastructure;
using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Tests;

/// <summary>Handlers that write in the engine's transaction get exactly-once effects.</summary>
public sealed class TransactionalHandlerTests
{
    [Fact]
    public async Task AHandlersWritesCommitTogetherWithTheSuccess()
    {
        await using var host = await StartAsync("tx-ok");
        var submitted = await host.SubmitAsync(new TestRequest(), Now(), kind: TransactionalTestHandler.Kind);

        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(async () => (await host.ReadAsync(submitted.Id)).Status == OperationStatus.Succeeded, TimeSpan.FromSeconds(20));
        await stop.CancelAsync();
        await pump;

        Assert.Equal(1, await host.ScalarAsync<long>("SELECT count(*) FROM test_effects WHERE operation_id = @id", new { id = submitted.Id }));
    }

    [Fact]
    public async Task AHandlersWritesRollBackWhenItFailsAndARetryWritesOnce()
    {
        await using var host = await StartAsync("tx-retry", new Dictionary<string, string?>
        {
            ["Operations:RetryBaseDelay"] = "00:00:00.010",
            ["Operations:RetryMaxDelay"] = "00:00:00.020",
        });
        var transient = await host.SubmitAsync(new TestRequest(FailTimes: 2), Now(), kind: TransactionalTestHandler.Kind);
        var permanent = await host.SubmitAsync(new TestRequest(FailPermanently: true), Now(), kind: TransactionalTestHandler.Kind);

        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(async () => (await host.ReadAsync(transient.Id)).Status == OperationStatus.Succeeded
                                                   && (await host.ReadAsync(permanent.Id)).Status == OperationStatus.Failed, TimeSpan.FromSeconds(20));
        await stop.CancelAsync();
        await pump;

        Assert.Equal(3, (await host.ReadAsync(transient.Id)).Attempts);
        // Three executions, one effect: the two failed attempts' writes were rolled back.
        Assert.Equal(3, host.Executions.Counts[transient.Id]);
        Assert.Equal(3, await host.ScalarAsync<int>("SELECT attempt FROM test_effects WHERE operation_id = @id", new { id = transient.Id }));
        Assert.Equal(1, await host.ScalarAsync<long>("SELECT count(*) FROM test_effects WHERE operation_id = @id", new { id = transient.Id }));
        Assert.Equal(0, await host.ScalarAsync<long>("SELECT count(*) FROM test_effects WHERE operation_id = @id", new { id = permanent.Id }));
    }

    [Fact]
    public async Task AHandlerThatLostItsLeaseHasItsWritesRolledBackAndOnlyTheNewOwnersCount()
    {
        string database = await PostgresServer.CreateDatabaseAsync();
        var executions = new ExecutionLog();
        await using var stale = await StartAsync("tx-stale", database: database, executions: executions);
        var submitted = await stale.SubmitAsync(new TestRequest(Block: true), Now(), kind: TransactionalTestHandler.Kind);

        using var stopStale = new CancellationTokenSource();
        var stalePump = stale.Worker.RunAsync(stopStale.Token);
        await Eventually.WaitUntilAsync(() => Task.FromResult(executions.Started.Contains(submitted.Id)), TimeSpan.FromSeconds(20));

        // While the handler hangs, its lease passes to another node (as lease rescue and a new claim would do),
        // which books its own effect and completes the operation.
        await using (var connection = new NpgsqlConnection(database))
        {
            await connection.OpenAsync();
            await using var transaction = await connection.BeginTransactionAsync();
            await connection.ExecuteAsync("""
                UPDATE operations SET locked_by = 'new-owner', attempts = attempts + 1 WHERE id = @id;
                INSERT INTO test_effects (operation_id, attempt) VALUES (@id, 2);
                """, new { id = submitted.Id }, transaction);
            Assert.True(await AttemptStore.CompleteInTransactionAsync(new OperationCompletion(submitted.Id, "new-owner", 2, "{}", Now()), transaction,
                CancellationToken.None));
            await transaction.CommitAsync();
        }

        // The stale handler now finishes: its success is fenced out and its own write rolled back.
        executions.Gate.SetResult();
        await Eventually.WaitUntilAsync(() => Task.FromResult(executions.Counts.ContainsKey(submitted.Id) && stale.Worker.RunningCount == 0),
            TimeSpan.FromSeconds(20));
        await stopStale.CancelAsync();
        await stalePump;

        Assert.Equal(1, await stale.ScalarAsync<long>("SELECT count(*) FROM test_effects WHERE operation_id = @id", new { id = submitted.Id }));
        Assert.Equal(2, await stale.ScalarAsync<int>("SELECT attempt FROM test_effects WHERE operation_id = @id", new { id = submitted.Id }));
        var row = await stale.ReadAsync(submitted.Id);
        Assert.Equal(OperationStatus.Succeeded, row.Status);
        Assert.Equal("{}", row.Result);
    }

    private static DateTime Now() => TimeProvider.System.GetUtcNow().UtcDateTime;

    private static async Task<EngineHost> StartAsync(string node, IDictionary<string, string?>? settings = null, TimeProvider? timeProvider = null,
        string? database = null, ExecutionLog? executions = null)
    {
        var host = await EngineHost.StartAsync(database ?? await PostgresServer.CreateDatabaseAsync(), node, settings, timeProvider, executions);
        await using var connection = new NpgsqlConnection(host.ConnectionString);
        await connection.ExecuteAsync("CREATE TABLE IF NOT EXISTS test_effects (operation_id uuid NOT NULL, attempt int NOT NULL)");
        return host;
    }
}
