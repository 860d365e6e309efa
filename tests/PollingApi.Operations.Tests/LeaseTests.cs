using System.Text.Json;
using Dapper;
using Npgsql;
using PollingApi.Operations.Tests.Infrastructure;
using PollingApi.Operations.Model;

namespace PollingApi.Operations.Tests;

public sealed class LeaseTests
{
    [Fact]
    public async Task AnExpiredLeaseReturnsTheRunningOperationToPending()
    {
        var time = FakeTime.Create();
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "rescuer", timeProvider: time);
        var now = time.GetUtcNow().UtcDateTime;
        var submitted = await host.SubmitAsync(new TestRequest(), now);
        await host.Attempts.ClaimAsync("dead-worker", 1, now, now.AddSeconds(30), CancellationToken.None);

        time.Advance(TimeSpan.FromSeconds(29));
        Assert.Equal(0, await host.LeaseRescue.RescueAsync(CancellationToken.None));
        Assert.Equal(OperationStatus.Running, (await host.ReadAsync(submitted.Id)).Status);

        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(1, await host.LeaseRescue.RescueAsync(CancellationToken.None));

        var row = await host.ReadAsync(submitted.Id);
        Assert.Equal(OperationStatus.Pending, row.Status);
        Assert.Null(row.LockedBy);
        Assert.Null(row.LockedUntil);
        Assert.Equal(1, row.Attempts);
        Assert.Equal(time.GetUtcNow().UtcDateTime, row.NextAttemptAt);
        Assert.Null(row.Error);
    }

    [Fact]
    public async Task AnOperationClaimedAtInsertByANodeThatDiedIsRescuedAndRunElsewhere()
    {
        var time = FakeTime.Create();
        string database = await PostgresServer.CreateDatabaseAsync();
        await using var host = await EngineHost.StartAsync(database, "survivor", timeProvider: time);
        var now = time.GetUtcNow().UtcDateTime;
        // The submitting node stored it claimed by itself, answered 202 and died before its handler ran.
        var insert = new Storage.OperationInsert(new Storage.NewOperation(Guid.CreateVersion7(), "default", TestHandler.Kind,
            JsonSerializer.Serialize(new TestRequest(), OperationJson.Options), 5, null), now, ClaimedBy: "dead-submitter");
        await host.BatchWriter.InsertAsync(insert);

        time.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal(1, await host.LeaseRescue.RescueAsync(CancellationToken.None));
        var rescued = await host.ReadAsync(insert.Operation.Id);
        Assert.Equal(OperationStatus.Pending, rescued.Status);
        Assert.Equal(1, rescued.Attempts);

        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(async () => (await host.ReadAsync(insert.Operation.Id)).Status == OperationStatus.Succeeded,
            TimeSpan.FromSeconds(10));
        await stop.CancelAsync();
        await pump;

        var row = await host.ReadAsync(insert.Operation.Id);
        Assert.Equal(2, row.Attempts);
        using var result = JsonDocument.Parse(row.Result!);
        Assert.Equal("survivor", result.RootElement.GetProperty("node").GetString());
        Assert.Equal(1, host.Executions.Counts[insert.Operation.Id]);
    }

    [Fact]
    public async Task AnExpiredLeaseOnTheLastAttemptFailsTheOperationWithLeaseExpired()
    {
        var time = FakeTime.Create();
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "rescuer", timeProvider: time);
        var now = time.GetUtcNow().UtcDateTime;
        var submitted = await host.SubmitAsync(new TestRequest(), now, maxAttempts: 1);
        await host.Attempts.ClaimAsync("dead-worker", 1, now, now.AddSeconds(30), CancellationToken.None);

        time.Advance(TimeSpan.FromMinutes(1));
        await host.LeaseRescue.RescueAsync(CancellationToken.None);

        var row = await host.ReadAsync(submitted.Id);
        Assert.Equal(OperationStatus.Failed, row.Status);
        Assert.Equal(time.GetUtcNow().UtcDateTime, row.CompletedAt);
        using var error = JsonDocument.Parse(row.Error!);
        Assert.Equal(ProblemTypes.LeaseExpired, error.RootElement.GetProperty("type").GetString());
    }

    [Fact]
    public async Task AStaleOwnersOutcomeIsRejectedAndTheNewOwnersOutcomeStands()
    {
        var time = FakeTime.Create();
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "rescuer", timeProvider: time);
        var now = time.GetUtcNow().UtcDateTime;
        var submitted = await host.SubmitAsync(new TestRequest(), now);
        var first = Assert.Single(await host.Attempts.ClaimAsync("worker-a", 1, now, now.AddSeconds(30), CancellationToken.None));

        time.Advance(TimeSpan.FromSeconds(31));
        now = time.GetUtcNow().UtcDateTime;
        await host.LeaseRescue.RescueAsync(CancellationToken.None);
        var second = Assert.Single(await host.Attempts.ClaimAsync("worker-b", 1, now, now.AddSeconds(30), CancellationToken.None));
        Assert.Equal(2, second.Attempts);

        Assert.Null(await host.BatchWriter.CompleteAsync(new Storage.OperationCompletion(submitted.Id, "worker-a", first.Attempts, """{"by":"a"}""", now)));
        Assert.False(await host.Attempts.EndAsync(submitted.Id, "worker-a", first.Attempts, OperationStatus.Failed, """{"type":"x","title":"a"}""",
            "permanent_failure", now, CancellationToken.None));
        Assert.False(await host.Attempts.ScheduleRetryAsync(submitted.Id, "worker-a", first.Attempts, now, now, "{}", "{}", CancellationToken.None));
        // The same node with a stale attempt number is fenced out too.
        Assert.Null(await host.BatchWriter.CompleteAsync(new Storage.OperationCompletion(submitted.Id, "worker-b", first.Attempts, """{"by":"b1"}""", now)));
        Assert.Equal(OperationStatus.Running, (await host.ReadAsync(submitted.Id)).Status);

        Assert.NotNull(await host.BatchWriter.CompleteAsync(new Storage.OperationCompletion(submitted.Id, "worker-b", second.Attempts, """{"by":"b"}""", now)));
        var row = await host.ReadAsync(submitted.Id);
        Assert.Equal(OperationStatus.Succeeded, row.Status);
        Assert.Equal("""{"by": "b"}""", row.Result);
        Assert.Null(await host.BatchWriter.CompleteAsync(new Storage.OperationCompletion(submitted.Id, "worker-b", second.Attempts, """{"by":"again"}""", now)));
    }

    [Fact]
    public async Task ALongHandlerKeepsItsLeaseByRenewingIt()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Operations:LeaseDuration"] = "00:00:04",
            ["Operations:LeaseRenewInterval"] = "00:00:00.500",
        };
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "renewer", settings);
        var submitted = await host.SubmitAsync(new TestRequest(Block: true), DateTime.SpecifyKind(DateTime.UnixEpoch, DateTimeKind.Utc));

        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(() => Task.FromResult(host.Executions.Started.Contains(submitted.Id)),
            TimeSpan.FromSeconds(10));

        // Run lease rescue for three lease durations while the handler is still working.
        var until = TimeProvider.System.GetUtcNow().AddSeconds(10);
        while (TimeProvider.System.GetUtcNow() < until)
        {
            await host.LeaseRescue.RescueAsync(CancellationToken.None);
            Assert.Equal(OperationStatus.Running, (await host.ReadAsync(submitted.Id)).Status);
            await Task.Delay(200);
        }

        host.Executions.Gate.SetResult();
        await Eventually.WaitUntilAsync(async () => (await host.ReadAsync(submitted.Id)).Status == OperationStatus.Succeeded,
            TimeSpan.FromSeconds(10));
        await stop.CancelAsync();
        await pump;

        var row = await host.ReadAsync(submitted.Id);
        Assert.Equal(1, row.Attempts);
        Assert.Equal(1, host.Executions.Counts[submitted.Id]);
    }

    [Fact]
    public async Task AWorkerCutOffFromTheDatabaseStopsItsHandlerBeforeItsLeaseEndsAndHandsTheOperationBackWhenItAnswers()
    {
        string database = await PostgresServer.CreateDatabaseAsync();
        using var proxy = TcpProxy.InFrontOf(database, out string proxied);
        var settings = new Dictionary<string, string?>
        {
            ["Operations:LeaseDuration"] = "00:00:04",
            ["Operations:LeaseRenewInterval"] = "00:00:01",
        };
        await using var host = await EngineHost.StartAsync(proxied, "cut-off", settings);
        var submitted = await host.SubmitAsync(new TestRequest(Block: true), DateTime.SpecifyKind(DateTime.UnixEpoch, DateTimeKind.Utc));
        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(() => Task.FromResult(host.Executions.Started.Contains(submitted.Id)), TimeSpan.FromSeconds(10));

        // Nothing the node sends reaches the server any more: its renewals hang, as in a network partition.
        proxy.Pause();
        await Eventually.WaitUntilAsync(() => Task.FromResult(host.Executions.Running == 0), TimeSpan.FromSeconds(10));
        var stoppedAt = TimeProvider.System.GetUtcNow().UtcDateTime;

        await using (var direct = new NpgsqlConnection(database))
        {
            var row = await direct.QuerySingleAsync<(string Status, string LockedBy, DateTime LockedUntil)>(
                "SELECT status, locked_by, locked_until FROM operations WHERE id = @id", new { id = submitted.Id });
            Assert.Equal((OperationStatus.Running, "cut-off"), (row.Status, row.LockedBy));
            Assert.True(stoppedAt < row.LockedUntil, $"The handler stopped at {stoppedAt:O}, after the lease it last stored ended ({row.LockedUntil:O}).");
        }

        Assert.False(host.Executions.Counts.ContainsKey(submitted.Id));
        // The given-up attempt keeps its slot until its operation is handed back.
        Assert.Equal(1, host.Worker.RunningCount);

        // Back in touch: the worker hands the operation back at once, not after its lease, and runs it again.
        host.Executions.Gate.SetResult();
        proxy.Resume();
        await Eventually.WaitUntilAsync(async () => (await host.ReadAsync(submitted.Id)).Status == OperationStatus.Succeeded,
            TimeSpan.FromSeconds(30));
        await stop.CancelAsync();
        await pump;

        var done = await host.ReadAsync(submitted.Id);
        Assert.Equal(2, done.Attempts);
        using var result = JsonDocument.Parse(done.Result!);
        Assert.Equal(2, result.RootElement.GetProperty("attempt").GetInt32());
        var history = await host.ScalarAsync<string>("SELECT attempt_history::text FROM operations WHERE id = @id", new { id = submitted.Id });
        using var attempts = JsonDocument.Parse(history);
        Assert.Equal(["lease_lost", "succeeded"], attempts.RootElement.EnumerateArray().Select(e => e.GetProperty("outcome").GetString()));
    }
}
