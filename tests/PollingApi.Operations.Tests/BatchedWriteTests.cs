using System.Text.Json;
using Npgsql;
using PollingApi.Operations.Storage;
using PollingApi.Operations.Tests.Infrastructure;
using PollingApi.Operations.Model;

namespace PollingApi.Operations.Tests;

public sealed class BatchedWriteTests
{
    private static readonly string Payload = JsonSerializer.Serialize(new TestRequest(), OperationJson.Options);

    [Fact]
    public async Task ConcurrentInsertsAreAllStoredAndADuplicateIdFailsOnlyItsOwnInsert()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "inserter");
        var now = Microsecond(TimeProvider.System.GetUtcNow().UtcDateTime);
        var operations = Enumerable.Range(0, 200)
            .Select(_ => new NewOperation(Guid.CreateVersion7(), "default", TestHandler.Kind, Payload, 5, null))
            .ToList();

        // The twin is stored first; then everything else is queued at once, the duplicate among them, so they share batches.
        await host.BatchWriter.InsertAsync(new OperationInsert(operations[100], now, ClaimedBy: null));
        var inserts = operations.Where((_, i) => i != 100)
            .Select(o => host.BatchWriter.InsertAsync(new OperationInsert(o, now, ClaimedBy: null))).ToList();
        var duplicate = host.BatchWriter.InsertAsync(new OperationInsert(operations[100], now, ClaimedBy: null));

        await Task.WhenAll(inserts);
        var failure = await Assert.ThrowsAsync<PostgresException>(() => duplicate);
        Assert.Equal(PostgresErrorCodes.UniqueViolation, failure.SqlState);
        Assert.Equal(200, await host.ScalarAsync<long>("SELECT count(*) FROM operations WHERE status = 'pending' AND attempts = 0"));
        var row = await host.ReadAsync(operations[7].Id);
        Assert.Equal(OperationStatus.Pending, row.Status);
        Assert.Equal(now, row.CreatedAt);
        Assert.Equal(now, row.NextAttemptAt);
        Assert.Null(row.LockedBy);
        Assert.Null(row.StartedAt);
        Assert.Equal(1, row.Version);
    }

    [Fact]
    public async Task AnInsertCancelledBeforeItsBatchIsFormedIsNotStored()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "canceller");
        var now = Microsecond(TimeProvider.System.GetUtcNow().UtcDateTime);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        var operation = new NewOperation(Guid.CreateVersion7(), "default", TestHandler.Kind, Payload, 5, null);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            host.BatchWriter.InsertAsync(new OperationInsert(operation, now, ClaimedBy: null), cancelled.Token));

        Assert.Equal(0, await host.ScalarAsync<long>("SELECT count(*) FROM operations"));
    }

    [Fact]
    public async Task AnInsertClaimedByTheNodeIsStoredRunningUnderItsLeaseWithItsFirstAttemptStarted()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "claimer",
            new Dictionary<string, string?> { ["Operations:LeaseDuration"] = "00:00:30" });
        var now = Microsecond(TimeProvider.System.GetUtcNow().UtcDateTime);
        var insert = new OperationInsert(new NewOperation(Guid.CreateVersion7(), "default", TestHandler.Kind, Payload, 3, null), now, host.NodeId);

        await host.BatchWriter.InsertAsync(insert);

        var row = await host.ReadAsync(insert.Operation.Id);
        Assert.Equal(OperationStatus.Running, row.Status);
        Assert.Equal(1, row.Attempts);
        Assert.Equal(3, row.MaxAttempts);
        Assert.Equal("claimer", row.LockedBy);
        Assert.Equal(now + TimeSpan.FromSeconds(30), row.LockedUntil);
        Assert.Equal(now, row.StartedAt);
        // What the submit answers with is what a read of the row shows.
        var answered = insert.ToRow(TimeSpan.FromSeconds(30));
        Assert.Equal(answered with { Payload = "" }, row);
    }

    [Fact]
    public async Task ACompletionWhoseLeaseWasLostIsFencedOutWhileTheOthersInItsBatchAreStored()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "completer");
        var now = Microsecond(TimeProvider.System.GetUtcNow().UtcDateTime);
        var ids = new List<Guid>();
        for (int i = 0; i < 3; i++)
        {
            var insert = new OperationInsert(new NewOperation(Guid.CreateVersion7(), "default", TestHandler.Kind, Payload, 5, null), now, host.NodeId);
            await host.BatchWriter.InsertAsync(insert);
            ids.Add(insert.Operation.Id);
        }

        // Another node took the second one over (its lease expired and it was claimed again).
        await host.ScalarAsync<int>("UPDATE operations SET locked_by = 'other', attempts = 2 WHERE id = @id RETURNING 1", new { id = ids[1] });

        var later = now.AddMilliseconds(5);
        var completions = await Task.WhenAll(ids.Select(id =>
            host.BatchWriter.CompleteAsync(new OperationCompletion(id, host.NodeId, 1, """{"done":true}""", later))));

        Assert.NotNull(completions[0]);
        Assert.Null(completions[1]);
        Assert.NotNull(completions[2]);
        var stored = completions[0]!;
        Assert.Equal(OperationStatus.Succeeded, stored.Status);
        Assert.Equal(later, stored.CompletedAt);
        Assert.Null(stored.LockedBy);
        Assert.Equal(2, stored.Version);
        Assert.Equal(stored with { Payload = "" }, (await host.ReadAsync(ids[0])) with { Payload = "" });
        var fenced = await host.ReadAsync(ids[1]);
        Assert.Equal(OperationStatus.Running, fenced.Status);
        Assert.Equal("other", fenced.LockedBy);
        Assert.Null(fenced.Result);
    }

    [Fact]
    public async Task AStaleAttemptSharingABatchWithTheAttemptThatTookOverIsToldItWasFencedOut()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "retaker");
        var now = Microsecond(TimeProvider.System.GetUtcNow().UtcDateTime);
        var insert = new OperationInsert(new NewOperation(Guid.CreateVersion7(), "default", TestHandler.Kind, Payload, 5, null), now, host.NodeId);
        await host.BatchWriter.InsertAsync(insert);
        // Its lease expired and this same node claimed it again: attempt 2 runs while attempt 1 is still finishing.
        await host.ScalarAsync<int>("UPDATE operations SET attempts = 2 WHERE id = @id RETURNING 1", new { id = insert.Operation.Id });

        var completions = await Task.WhenAll(
            host.BatchWriter.CompleteAsync(new OperationCompletion(insert.Operation.Id, host.NodeId, 1, """{"attempt":1}""", now)),
            host.BatchWriter.CompleteAsync(new OperationCompletion(insert.Operation.Id, host.NodeId, 2, """{"attempt":2}""", now)));

        Assert.Null(completions[0]);
        Assert.NotNull(completions[1]);
        Assert.Equal(2, completions[1]!.Attempts);
        var row = await host.ReadAsync(insert.Operation.Id);
        Assert.Equal(OperationStatus.Succeeded, row.Status);
        JsonAssertSame("""{"attempt":2}""", row.Result!);
    }

    [Fact]
    public async Task AnIdlePumpPromisesItsFreeSlotsToSubmitsButNotWhileWorkMayBeWaitingInTheTable()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "promiser",
            new Dictionary<string, string?> { ["Operations:MaxConcurrency"] = "1" });
        Assert.False(host.Worker.TryPromiseSlot(), "a pump that is not running promises nothing");

        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        // Its first claim finds the queue empty.
        await Eventually.WaitUntilAsync(() => Task.FromResult(host.Worker.TryPromiseSlot()), TimeSpan.FromSeconds(10));
        Assert.False(host.Worker.TryPromiseSlot(), "its only slot is promised");
        host.Worker.BreakPromise();

        // Work was stored pending: submits queue behind it until claims have taken it and found the queue empty
        // (with one slot, the claim that takes it is full, so it takes the claim after it).
        var waiting = await host.SubmitAsync(new TestRequest(Block: true), TimeProvider.System.GetUtcNow().UtcDateTime);
        host.Slots.NotePending();
        Assert.False(host.Worker.TryPromiseSlot());
        await Eventually.WaitUntilAsync(() => Task.FromResult(host.Executions.Started.Contains(waiting.Id)), TimeSpan.FromSeconds(10));
        Assert.False(host.Worker.TryPromiseSlot(), "the slot is busy");
        host.Executions.Gate.SetResult();
        await Eventually.WaitUntilAsync(async () => (await host.ReadAsync(waiting.Id)).Status == OperationStatus.Succeeded, TimeSpan.FromSeconds(10));
        await Eventually.WaitUntilAsync(() => Task.FromResult(host.Worker.TryPromiseSlot()), TimeSpan.FromSeconds(10));
        host.Worker.BreakPromise();

        await stop.CancelAsync();
        await pump;
        Assert.False(host.Worker.TryPromiseSlot(), "a stopped pump promises nothing");
    }

    [Fact]
    public async Task APromisedOperationRunsWithoutAClaimAndItsWaiterGetsTheCompletedRow()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "runner");
        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(() => Task.FromResult(host.Worker.TryPromiseSlot()), TimeSpan.FromSeconds(10));

        var now = Microsecond(TimeProvider.System.GetUtcNow().UtcDateTime);
        var insert = new OperationInsert(new NewOperation(Guid.CreateVersion7(), "default", TestHandler.Kind, Payload, 5, null), now, host.NodeId);
        using var waiter = host.Waiters.Register(insert.Operation.Id);
        await host.BatchWriter.InsertAsync(insert);
        host.Worker.RunPromised(insert.ToClaimed());

        var wakeUp = await waiter.WaitAsync(TimeSpan.FromSeconds(10), TimeProvider.System, CancellationToken.None);
        Assert.True(wakeUp.Notified);
        Assert.NotNull(wakeUp.Current);
        Assert.Equal(OperationStatus.Succeeded, wakeUp.Current.Status);
        Assert.Equal(1, wakeUp.Current.Attempts);
        using (var result = JsonDocument.Parse(wakeUp.Current.Result!))
        {
            Assert.Equal(insert.Operation.Id, result.RootElement.GetProperty("operationId").GetGuid());
            Assert.Equal("runner", result.RootElement.GetProperty("node").GetString());
        }

        Assert.Equal(wakeUp.Current with { Payload = "" }, (await host.ReadAsync(insert.Operation.Id)) with { Payload = "" });
        Assert.Equal(1, host.Executions.Counts[insert.Operation.Id]);

        await stop.CancelAsync();
        await pump;
    }

    [Fact]
    public async Task AStoppingPumpLeavesAPromisedOperationToTheReleaseInsteadOfRunningIt()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "stopper");
        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(() => Task.FromResult(host.Worker.TryPromiseSlot()), TimeSpan.FromSeconds(10));

        var now = Microsecond(TimeProvider.System.GetUtcNow().UtcDateTime);
        var insert = new OperationInsert(new NewOperation(Guid.CreateVersion7(), "default", TestHandler.Kind, Payload, 5, null), now, host.NodeId);
        await host.BatchWriter.InsertAsync(insert);
        await stop.CancelAsync();
        await Eventually.WaitUntilAsync(() =>
        {
            if (host.Worker.TryPromiseSlot())
            {
                host.Worker.BreakPromise();
                return Task.FromResult(false);
            }

            return Task.FromResult(true);
        }, TimeSpan.FromSeconds(10));
        Assert.False(pump.IsCompleted, "the stop waits for the promised slot");
        host.Worker.RunPromised(insert.ToClaimed());
        await pump.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Empty(host.Executions.Started);
        var row = await host.ReadAsync(insert.Operation.Id);
        Assert.Equal(OperationStatus.Pending, row.Status);
        Assert.Equal(0, row.Attempts);
        Assert.Null(row.LockedBy);
    }

    private static void JsonAssertSame(string expected, string actual) =>
        Assert.True(JsonElement.DeepEquals(JsonDocument.Parse(expected).RootElement, JsonDocument.Parse(actual).RootElement), actual);

    private static DateTime Microsecond(DateTime time) => time.AddTicks(-(time.Ticks % 10));
}
