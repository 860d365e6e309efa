using System.Text.Json;
using Dapper;
using Npgsql;
using PollingApi.Operations.Storage;
using PollingApi.Operations.Tests.Infrastructure;
using PollingApi.Operations.Model;

namespace PollingApi.Operations.Tests;

/// <summary>
/// The connection breaks after a write was sent, either before the server got it or after the server committed it
/// (a proxy drops the acknowledgement): the engine settles what the database holds and acts on that, never on a guess.
/// </summary>
public sealed class CommitOutcomeTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    [Theory]
    [InlineData(FaultMoment.AfterTheCommit)]
    [InlineData(FaultMoment.BeforeTheServer)]
    public async Task EveryCallerOfABatchWhoseCommitIsUnacknowledgedSucceedsAndEachOperationIsStoredOnce(FaultMoment moment)
    {
        string database = await PostgresServer.CreateDatabaseAsync();
        using var proxy = TcpProxy.InFrontOf(database, out string proxied);
        await using var host = await EngineHost.StartAsync(proxied, "batcher");
        var now = Microsecond(TimeProvider.System.GetUtcNow().UtcDateTime);

        // Four inserts, one at a time, each keep one of the four writers waiting at the paused proxy; the five after them
        // queue up, and the first writer free takes them all into one batch: the one whose acknowledgement is lost.
        proxy.Pause();
        var occupying = new List<(Guid Id, Task Stored)>();
        for (int i = 0; i < 4; i++)
        {
            occupying.Add(Insert(host, new TestRequest(FailTimes: 11), now));
            await Eventually.WaitUntilAsync(() => Task.FromResult(host.BatchWriter.QueuedInserts == 0), Deadline);
        }

        var batch = Enumerable.Range(0, 5).Select(_ => Insert(host, new TestRequest(FailTimes: 22), now)).ToList();
        await Eventually.WaitUntilAsync(() => Task.FromResult(host.BatchWriter.QueuedInserts == 5), Deadline);
        var broken = proxy.ArmFault(TcpProxy.Containing("\"failTimes\":22"), moment);
        proxy.Resume();

        await Task.WhenAll(occupying.Concat(batch).Select(insert => insert.Stored)).WaitAsync(Deadline);
        Assert.True(broken.IsCompleted, "The proxy never saw the batch's insert.");
        await using var connection = new NpgsqlConnection(database);
        var stored = (await connection.QueryAsync<Guid>("SELECT id FROM operations")).ToList();
        Assert.Equal(9, stored.Count);
        Assert.Equal(occupying.Concat(batch).Select(insert => insert.Id).Order(), stored.Order());
        Assert.Equal(5, await connection.ExecuteScalarAsync<long>(
            "SELECT count(*) FROM operations WHERE payload ->> 'failTimes' = '22' AND status = 'pending' AND attempts = 0"));
    }

    [Fact]
    public async Task AClaimWhoseCommitIsUnacknowledgedRunsTheOperationsItTookOnTheirFirstAttempt()
    {
        string database = await PostgresServer.CreateDatabaseAsync();
        using var proxy = TcpProxy.InFrontOf(database, out string proxied);
        await using var host = await EngineHost.StartAsync(proxied, "claimer");
        var submitted = await host.SubmitAsync(new TestRequest(), TimeProvider.System.GetUtcNow().UtcDateTime);
        var broken = proxy.ArmFault(TcpProxy.Containing("WITH RECURSIVE queues AS"), FaultMoment.AfterTheCommit);

        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(async () => (await host.ReadAsync(submitted.Id)).Status == OperationStatus.Succeeded, Deadline);
        await stop.CancelAsync();
        await pump;

        Assert.True(broken.IsCompleted, "The proxy never saw the claim.");
        // Without settling, the claimed row would have waited out its 30 s lease and run on a second attempt.
        var row = await host.ReadAsync(submitted.Id);
        Assert.Equal(1, row.Attempts);
        Assert.Equal(1, host.Executions.Counts[submitted.Id]);
        JsonAssertions.HasAttempt(row.Result, 1);
    }

    [Fact]
    public async Task AClaimWhoseCommitCannotBeSettledHandsItsRowsBackUncountedAndKeepsTheirSlotsUntilThen()
    {
        string database = await PostgresServer.CreateDatabaseAsync();
        using var proxy = TcpProxy.InFrontOf(database, out string proxied);
        // One slot, and a lease far longer than the test: the claimed row must not be left to it.
        await using var host = await EngineHost.StartAsync(proxied, "unsettled-claimer", new Dictionary<string, string?>
        {
            ["Operations:MaxConcurrency"] = "1",
            ["Operations:LeaseDuration"] = "00:05:00",
            ["Operations:LeaseRenewInterval"] = "00:00:00.200",
            ["Operations:CommitResolutionTimeout"] = "00:00:01",
        });
        var first = await host.SubmitAsync(new TestRequest(), TimeProvider.System.GetUtcNow().UtcDateTime);
        // The claim commits, its acknowledgement is lost, and the database stays out of reach for longer than settling may take.
        var broken = proxy.ArmFault(TcpProxy.Containing("WITH RECURSIVE queues AS"), FaultMoment.AfterTheCommit, proxy.SwitchOff);

        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        try
        {
            await broken.WaitAsync(Deadline);
            await Eventually.WaitUntilAsync(() => Task.FromResult(host.Leases.UnsettledWrites == 1), Deadline);
        }
        finally
        {
            proxy.SwitchOn();
        }

        var second = await host.SubmitAsync(new TestRequest(), TimeProvider.System.GetUtcNow().UtcDateTime);
        await using var connection = new NpgsqlConnection(database);
        long mostRunning = 0;
        await Eventually.WaitUntilAsync(async () =>
        {
            mostRunning = Math.Max(mostRunning, await connection.ExecuteScalarAsync<long>(
                "SELECT count(*) FROM operations WHERE status = 'running' AND locked_by = @node", new { node = host.NodeId }));
            return (await host.ReadAsync(first.Id)).Status == OperationStatus.Succeeded
                   && (await host.ReadAsync(second.Id)).Status == OperationStatus.Succeeded;
        }, Deadline);
        await stop.CancelAsync();
        await pump;

        // The claimed row went back to pending uncounted and ran on its first attempt; the node never held more than its slot.
        Assert.Equal(1, (await host.ReadAsync(first.Id)).Attempts);
        Assert.Equal(1, host.Executions.Counts[first.Id]);
        Assert.Equal(1, (await host.ReadAsync(second.Id)).Attempts);
        Assert.True(mostRunning <= 1, $"The node held {mostRunning} running operations with one handler slot.");
        Assert.Equal(0, host.Leases.UnsettledWrites);
    }

    [Fact]
    public async Task AFailureWhoseCommitIsUnacknowledgedIsReportedToWaitersAsStoredNotAsALostLease()
    {
        string database = await PostgresServer.CreateDatabaseAsync();
        using var proxy = TcpProxy.InFrontOf(database, out string proxied);
        await using var host = await EngineHost.StartAsync(proxied, "failer");
        var submitted = await host.SubmitAsync(new TestRequest(FailPermanently: true), TimeProvider.System.GetUtcNow().UtcDateTime);
        var broken = proxy.ArmFault(TcpProxy.Containing(submitted.Id, "urn:test:permanent"), FaultMoment.AfterTheCommit);

        bool notified = await RunUntilIdleAsync(host, submitted.Id);

        Assert.True(broken.IsCompleted, "The proxy never saw the failure's update.");
        Assert.True(notified, "The waiter was not told that the operation failed.");
        var row = await host.ReadAsync(submitted.Id);
        Assert.Equal(OperationStatus.Failed, row.Status);
        Assert.Equal(1, row.Attempts);
        Assert.Equal("urn:test:permanent", JsonDocument.Parse(row.Error!).RootElement.GetProperty("type").GetString());
        Assert.Equal(1, host.Executions.Counts[submitted.Id]);
    }

    [Fact]
    public async Task ATransactionalHandlersUnacknowledgedCommitIsReadBackAndItsEffectsCountOnce()
    {
        string database = await PostgresServer.CreateDatabaseAsync();
        using var proxy = TcpProxy.InFrontOf(database, out string proxied);
        await using var host = await EngineHost.StartAsync(proxied, "committer");
        await using (var setup = new NpgsqlConnection(database))
        {
            await setup.ExecuteAsync("CREATE TABLE test_effects (operation_id uuid NOT NULL, attempt int NOT NULL)");
        }

        var submitted = await host.SubmitAsync(new TestRequest(), TimeProvider.System.GetUtcNow().UtcDateTime, kind: TransactionalTestHandler.Kind);
        // The handler's transaction is the only one this node commits explicitly.
        var broken = proxy.ArmFault(TcpProxy.Containing("COMMIT\0"), FaultMoment.AfterTheCommit);

        bool notified = await RunUntilIdleAsync(host, submitted.Id);

        Assert.True(broken.IsCompleted, "The proxy never saw the COMMIT.");
        Assert.True(notified, "The waiter was not told that the operation succeeded.");
        var row = await host.ReadAsync(submitted.Id);
        Assert.Equal(OperationStatus.Succeeded, row.Status);
        Assert.Equal(1, row.Attempts);
        Assert.Equal(1, host.Executions.Counts[submitted.Id]);
        await using var connection = new NpgsqlConnection(database);
        Assert.Equal(1, await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM test_effects WHERE operation_id = @id", new { id = submitted.Id }));
    }

    /// <summary>
    /// The connection of a transactional handler's transaction breaks under one of the handler's statements, or under its
    /// COMMIT before the server gets it (settled: not committed). Npgsql disposes such a transaction; the attempt must still
    /// end as a failed attempt retried after its backoff, not die with the connection and leave the operation to its lease.
    /// </summary>
    [Theory]
    [InlineData("INSERT INTO test_effects", 1)]
    [InlineData("COMMIT\0", 2)]
    public async Task ATransactionalAttemptWhoseConnectionBreaksIsAFailedAttemptRetriedAtOnceNotALostLease(string brokenMessage, int handlerRuns)
    {
        string database = await PostgresServer.CreateDatabaseAsync();
        using var proxy = TcpProxy.InFrontOf(database, out string proxied);
        // A lease far longer than the test: the operation must not be left to it.
        await using var host = await EngineHost.StartAsync(proxied, "broken-transaction", new Dictionary<string, string?>
        {
            ["Operations:LeaseDuration"] = "00:05:00",
            ["Operations:RetryBaseDelay"] = "00:00:00.010",
            ["Operations:RetryMaxDelay"] = "00:00:00.010",
        });
        await using (var setup = new NpgsqlConnection(database))
        {
            await setup.ExecuteAsync("CREATE TABLE test_effects (operation_id uuid NOT NULL, attempt int NOT NULL)");
        }

        var submitted = await host.SubmitAsync(new TestRequest(), TimeProvider.System.GetUtcNow().UtcDateTime, kind: TransactionalTestHandler.Kind);
        var broken = proxy.ArmFault(TcpProxy.Containing(brokenMessage), FaultMoment.BeforeTheServer);

        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(async () => (await host.ReadAsync(submitted.Id)).Status == OperationStatus.Succeeded, Deadline);
        await stop.CancelAsync();
        await pump;

        Assert.True(broken.IsCompleted, $"The proxy never saw {brokenMessage}.");
        var row = await host.ReadAsync(submitted.Id);
        Assert.Equal(2, row.Attempts);
        Assert.Equal(handlerRuns, host.Executions.Counts[submitted.Id]);
        JsonAssertions.HasAttempt(row.Result, 2);
        await using var connection = new NpgsqlConnection(database);
        var effects = (await connection.QueryAsync<int>("SELECT attempt FROM test_effects WHERE operation_id = @id", new { id = submitted.Id })).ToList();
        Assert.Equal([2], effects);
        // The first attempt ended as a failure of its own, not as a lease that ran out.
        string? firstEnd = await connection.ExecuteScalarAsync<string>(
            "SELECT attempt_history -> 0 ->> 'outcome' FROM operations WHERE id = @id", new { id = submitted.Id });
        Assert.Equal("transient_failure", firstEnd);
    }

    /// <summary>Runs the node's worker until it has handled <paramref name="id"/>; whether a request waiting for it was told.</summary>
    private static async Task<bool> RunUntilIdleAsync(EngineHost host, Guid id)
    {
        using var waiter = host.Waiters.Register(id);
        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        var wakeUp = await waiter.WaitAsync(Deadline, TimeProvider.System, CancellationToken.None);
        await Eventually.WaitUntilAsync(() => Task.FromResult(host.Executions.Counts.ContainsKey(id) && host.Worker.RunningCount == 0), Deadline);
        await stop.CancelAsync();
        await pump;
        return wakeUp.Notified;
    }

    private static (Guid Id, Task Stored) Insert(EngineHost host, TestRequest request, DateTime now)
    {
        var operation = new NewOperation(Guid.CreateVersion7(), "default", TestHandler.Kind,
            JsonSerializer.Serialize(request, OperationJson.Options), 5, null);
        return (operation.Id, host.BatchWriter.InsertAsync(new OperationInsert(operation, now, ClaimedBy: null)));
    }

    private static DateTime Microsecond(DateTime value) => value.AddTicks(-(value.Ticks % 10));

    private static class JsonAssertions
    {
        public static void HasAttempt(string? resultJson, int attempt)
        {
            Assert.NotNull(resultJson);
            Assert.Equal(attempt, JsonDocument.Parse(resultJson).RootElement.GetProperty("attempt").GetInt32());
        }
    }
}
