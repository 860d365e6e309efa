using System.Text.Json;
using Dapper;
using Npgsql;
using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;
using PollingApi.Operations.Tests.Infrastructure;
using Xunit.Abstractions;

namespace PollingApi.Operations.Tests;

/// <summary>The claim's rules on real PostgreSQL: turns between tenants, priorities, paused kinds, caps and attempt timeouts.</summary>
public sealed class QueueControlTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task ATenantsOnlyOperationIsClaimedInTheFirstRoundBehindAnotherTenantsBacklogOfFiveThousand()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "fair");
        var now = TimeProvider.System.GetUtcNow().UtcDateTime;
        await InsertPendingAsync(host, "tenant-a", TestHandler.Kind, 5000, now.AddMinutes(-10));
        var latecomer = await InsertPendingAsync(host, "tenant-b", TestHandler.Kind, 1, now);

        var claimed = await host.Attempts.ClaimAsync("fair", 8, now, now.AddSeconds(30), CancellationToken.None);

        // Two queues share the batch of 8: tenant A's gives its 4, tenant B's its only one.
        Assert.Equal(5, claimed.Count);
        Assert.Contains(claimed, c => c.Id == latecomer[0]);
        // Tenant A's four are its oldest four: turns between tenants keep each tenant's own order.
        var oldestOfA = await host.ScalarAsync<Guid[]>(
            "SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM operations WHERE owner = 'tenant-a' ORDER BY next_attempt_at, id LIMIT 4) AS a");
        Assert.Equal(oldestOfA.Order(), claimed.Where(c => c.Owner == "tenant-a").Select(c => c.Id).Order());
        // A's queue gave its whole share: the worker is told to claim again at once.
        Assert.All(claimed, c => Assert.True(c.MoreDue));
        Assert.Equal(4, await host.ScalarAsync<long>("SELECT count(*) FROM operations WHERE status = 'running' AND owner = 'tenant-a'"));
    }

    [Fact]
    public async Task WithAWorkerRunningTenantBsOperationStartsAfterAtMostOneRoundOfTenantAsBacklog()
    {
        const int Backlog = 5000;
        const int Slots = 4;
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "fair-worker",
            new Dictionary<string, string?> { ["Operations:MaxConcurrency"] = Slots.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        var now = TimeProvider.System.GetUtcNow().UtcDateTime;
        await InsertPendingAsync(host, "tenant-a", TestHandler.Kind, Backlog, now.AddMinutes(-10), """{"sleepMs":5}""");
        var latecomer = (await InsertPendingAsync(host, "tenant-b", TestHandler.Kind, 1, now))[0];

        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(async () => await host.ScalarAsync<string>(
            "SELECT status FROM operations WHERE id = @latecomer", new { latecomer }) == OperationStatus.Succeeded, Deadline);
        await stop.CancelAsync();
        await pump;

        long startedBefore = await host.ScalarAsync<long>("""
            SELECT count(*) FROM operations
            WHERE owner = 'tenant-a' AND started_at < (SELECT started_at FROM operations WHERE id = @latecomer)
            """, new { latecomer });
        output.WriteLine($"Tenant B's operation started after {startedBefore} of tenant A's {Backlog} queued operations ({Slots} handler slots).");
        // First come, first served, it would have started after all 5,000.
        Assert.InRange(startedBefore, 0, Slots);
    }

    [Fact]
    public async Task AHigherPriorityIsClaimedFirstButALowPriorityThatWaitedLongerThanTheAgingRuleAllowsGoesFirst()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "priorities");
        var now = TimeProvider.System.GetUtcNow().UtcDateTime;
        var low = await InsertPendingAsync(host, "default", TestHandler.Kind, 1, now.AddSeconds(-30), priority: 0);
        var normal = await InsertPendingAsync(host, "default", TestHandler.Kind, 1, now.AddSeconds(-20), priority: 5);
        var high = await InsertPendingAsync(host, "default", TestHandler.Kind, 1, now.AddSeconds(-10), priority: 9);

        var order = new List<Guid>();
        for (int i = 0; i < 3; i++)
        {
            order.AddRange((await host.Attempts.ClaimAsync("priorities", 1, now, now.AddSeconds(30), CancellationToken.None)).Select(c => c.Id));
        }

        Assert.Equal([high[0], normal[0], low[0]], order);

        // Each level is worth one minute of waiting: priority 0 due ten minutes ago beats priority 9 due now.
        var agedLow = await InsertPendingAsync(host, "default", TestHandler.Kind, 1, now.AddMinutes(-10), priority: 0);
        var freshHigh = await InsertPendingAsync(host, "default", TestHandler.Kind, 1, now, priority: 9);
        var first = await host.Attempts.ClaimAsync("priorities", 1, now, now.AddSeconds(30), CancellationToken.None);
        Assert.Equal(agedLow[0], Assert.Single(first).Id);
        var second = await host.Attempts.ClaimAsync("priorities", 1, now, now.AddSeconds(30), CancellationToken.None);
        Assert.Equal(freshHigh[0], Assert.Single(second).Id);
    }

    [Fact]
    public async Task APausedKindIsNotClaimedWhileOtherKindsAreAndResumingRunsItAtOnce()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "pauser");
        await host.ScalarAsync<int>("CREATE TABLE test_effects (operation_id uuid NOT NULL, attempt int NOT NULL); SELECT 1");
        await host.Kinds.SaveAsync(TestHandler.Kind, paused: true, null, null, 5, CancellationToken.None);
        var now = TimeProvider.System.GetUtcNow().UtcDateTime;
        var paused = await host.SubmitAsync(new TestRequest(), now);
        var other = await host.SubmitAsync(new TestRequest(), now, kind: TransactionalTestHandler.Kind);

        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        // The other kind's operation was submitted after it: once that one ran, a claim passed the paused one by.
        await Eventually.WaitUntilAsync(async () => (await host.ReadAsync(other.Id)).Status == OperationStatus.Succeeded, Deadline);
        Assert.Equal(OperationStatus.Pending, (await host.ReadAsync(paused.Id)).Status);
        Assert.DoesNotContain(paused.Id, host.Executions.Started);

        var resumed = await host.Kinds.SaveAsync(TestHandler.Kind, paused: false, null, null, 5, CancellationToken.None);
        Assert.False(resumed.Paused);
        Assert.Equal(1, await host.ScalarAsync<long>("SELECT count(*) FROM operation_kinds WHERE kind = 'test.run' AND NOT paused"));
        // Resuming wakes the worker: well within one poll interval of a default node (1 s), not after it.
        await Eventually.WaitUntilAsync(async () => (await host.ReadAsync(paused.Id)).Status == OperationStatus.Succeeded, Deadline);
        await stop.CancelAsync();
        await pump;
    }

    [Fact]
    public async Task AKindsCapCountsWhatIsRunningOnEveryNode()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "capper");
        var now = TimeProvider.System.GetUtcNow().UtcDateTime;
        await using (var connection = new NpgsqlConnection(host.ConnectionString))
        {
            // Two already running on another node.
            await connection.ExecuteAsync("""
                INSERT INTO operations (id, owner, kind, status, payload, attempts, max_attempts, next_attempt_at, locked_by, locked_until, created_at, updated_at)
                SELECT gen_random_uuid(), 'default', 'test.run', 'running', '{}', 1, 5, @now, 'elsewhere', @now + interval '1 minute', @now, @now
                FROM generate_series(1, 2)
                """, new { now });
        }

        await InsertPendingAsync(host, "default", TestHandler.Kind, 10, now.AddSeconds(-1));
        await InsertPendingAsync(host, "default", TransactionalTestHandler.Kind, 10, now.AddSeconds(-1));
        var rules = new ClaimRules([], [TestHandler.Kind], [3], null, [], []);

        var claimed = await host.Attempts.ClaimAsync("capper", 8, now, now.AddSeconds(30), rules, CancellationToken.None);

        // Two queues share the batch of 8, 4 each; the capped kind has room for 1 of its 4.
        Assert.Equal(1, claimed.Count(c => c.Kind == TestHandler.Kind));
        Assert.Equal(4, claimed.Count(c => c.Kind == TransactionalTestHandler.Kind));
        Assert.Equal(3, await host.ScalarAsync<long>("SELECT count(*) FROM operations WHERE kind = 'test.run' AND status = 'running'"));
        var full = await host.Attempts.ClaimAsync("capper", 8, now, now.AddSeconds(30), rules, CancellationToken.None);
        Assert.DoesNotContain(full, c => c.Kind == TestHandler.Kind);
    }

    [Fact]
    public async Task ATenantCapLimitsEachTenantAndAnOverrideRaisesItForOne()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "tenant-caps");
        var now = TimeProvider.System.GetUtcNow().UtcDateTime;
        foreach (var tenant in new[] { "small-1", "small-2", "large" })
        {
            await InsertPendingAsync(host, tenant, TestHandler.Kind, 10, now.AddSeconds(-1));
        }

        var rules = new ClaimRules([], [], [], 2, ["large"], [5]);
        var claimed = await host.Attempts.ClaimAsync("tenant-caps", 20, now, now.AddSeconds(30), rules, CancellationToken.None);

        var byTenant = claimed.GroupBy(c => c.Owner).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(2, byTenant["small-1"]);
        Assert.Equal(2, byTenant["small-2"]);
        Assert.Equal(5, byTenant["large"]);
        Assert.Empty(await host.Attempts.ClaimAsync("tenant-caps", 20, now, now.AddSeconds(30), rules, CancellationToken.None));
    }

    [Fact]
    public async Task TheLockOfACappedClaimIsHeldUntilTheClaimStatementSentWithItIsDone()
    {
        // The capped claim sends "take the lock" and "claim" together: they must run in one transaction, or the lock
        // would be released before the claim counts what is running.
        await using var dataSource = NpgsqlDataSource.Create(await PostgresServer.CreateDatabaseAsync());
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var results = await connection.QueryMultipleAsync(
            "SELECT txid_current(), pg_advisory_xact_lock(42); SELECT txid_current(), count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()");
        var first = await results.ReadSingleAsync<(long Transaction, object? Lock)>();
        var second = await results.ReadSingleAsync<(long Transaction, long AdvisoryLocks)>();

        Assert.Equal(first.Transaction, second.Transaction);
        Assert.Equal(1, second.AdvisoryLocks);
        Assert.Equal(0, await connection.ExecuteScalarAsync<long>(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"));
    }

    [Fact]
    public async Task ThreeWorkerNodesNeverRunMoreOperationsOfACappedKindThanItsCap()
    {
        const int Cap = 3;
        const int Count = 60;
        string database = await PostgresServer.CreateDatabaseAsync();
        var executions = new ExecutionLog();
        var settings = new Dictionary<string, string?> { ["Operations:MaxConcurrency"] = "8" };
        var nodes = new List<EngineHost>();
        for (int i = 0; i < 3; i++)
        {
            nodes.Add(await EngineHost.StartAsync(database, $"capped-{i}", settings, executions: executions));
        }

        try
        {
            await nodes[0].Kinds.SaveAsync(TestHandler.Kind, false, Cap, null, 5, CancellationToken.None);
            var now = TimeProvider.System.GetUtcNow().UtcDateTime;
            await InsertPendingAsync(nodes[0], "default", TestHandler.Kind, Count, now.AddSeconds(-1), """{"sleepMs":40}""");

            using var stop = new CancellationTokenSource();
            long mostRunningInTable = 0;
            var sampler = Task.Run(async () =>
            {
                await using var connection = new NpgsqlConnection(database);
                await connection.OpenAsync();
                while (!stop.IsCancellationRequested)
                {
                    long running = await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM operations WHERE kind = 'test.run' AND status = 'running'");
                    mostRunningInTable = Math.Max(mostRunningInTable, running);
                }
            });
            var pumps = nodes.Select(n => n.Worker.RunAsync(stop.Token)).ToList();
            await Eventually.WaitUntilAsync(
                async () => await nodes[0].ScalarAsync<long>("SELECT count(*) FROM operations WHERE status = 'succeeded'") == Count, TimeSpan.FromSeconds(90));
            await stop.CancelAsync();
            await Task.WhenAll(pumps);
            await sampler;

            var nodesUsed = await nodes[0].ScalarAsync<long>("SELECT count(DISTINCT attempt_history -> 0 ->> 'node') FROM operations");
            output.WriteLine($"At most {executions.MostRunning} handlers ran at once (table: {mostRunningInTable}), on {nodesUsed} nodes, cap {Cap}.");
            Assert.Equal(Cap, executions.MostRunning);
            Assert.InRange(mostRunningInTable, 1, Cap);
            Assert.True(nodesUsed >= 2, $"Only {nodesUsed} node ran the operations.");
            Assert.All(executions.Counts.Values, n => Assert.Equal(1, n));
        }
        finally
        {
            foreach (var node in nodes)
            {
                await node.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task AnAttemptOverItsKindsTimeoutIsCancelledAndRetriedThenFailsAttemptTimedOut()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "timeouts",
            new Dictionary<string, string?> { ["Operations:RetryBaseDelay"] = "00:00:00.100", ["Operations:RetryMaxDelay"] = "00:00:00.200" });
        await host.Kinds.SaveAsync(TestHandler.Kind, false, null, attemptTimeoutSeconds: 1, 5, CancellationToken.None);
        var submitted = await host.SubmitAsync(new TestRequest(SleepMs: 60_000), TimeProvider.System.GetUtcNow().UtcDateTime, maxAttempts: 2);

        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(async () => (await host.ReadAsync(submitted.Id)).Status == OperationStatus.Failed, Deadline);
        await stop.CancelAsync();
        await pump;

        var row = await host.ReadAsync(submitted.Id);
        Assert.Equal(2, row.Attempts);
        using var error = JsonDocument.Parse(row.Error!);
        Assert.Equal(ProblemTypes.AttemptTimedOut, error.RootElement.GetProperty("type").GetString());
        using var history = JsonDocument.Parse(await host.ScalarAsync<string>("SELECT attempt_history::text FROM operations WHERE id = @id", new { id = submitted.Id }));
        var attempts = history.RootElement.EnumerateArray().ToList();
        Assert.Equal(2, attempts.Count);
        Assert.All(attempts, a =>
        {
            Assert.Equal("timed_out", a.GetProperty("outcome").GetString());
            Assert.Equal(ProblemTypes.AttemptTimedOut, a.GetProperty("error").GetProperty("type").GetString());
            var ran = a.GetProperty("endedAt").GetDateTime() - a.GetProperty("startedAt").GetDateTime();
            Assert.InRange(ran, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(20));
        });
    }

    [Fact]
    public async Task AHandlerThatIgnoresItsTimeoutLosesItsLeaseAndWhatItWritesLaterIsFencedOut()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "hangs", new Dictionary<string, string?>
        {
            ["Operations:LeaseDuration"] = "00:00:02",
            ["Operations:LeaseRenewInterval"] = "00:00:00.500",
            ["Operations:MaxConcurrency"] = "4",
        });
        await host.Kinds.SaveAsync(TestHandler.Kind, false, null, attemptTimeoutSeconds: 1, 5, CancellationToken.None);
        var submitted = await host.SubmitAsync(new TestRequest(HangAttempts: 1), TimeProvider.System.GetUtcNow().UtcDateTime);

        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(() => Task.FromResult(host.Executions.Started.Contains(submitted.Id)), Deadline);
        // Past the timeout the lease is no longer renewed: it runs out although the handler is still running.
        await Eventually.WaitUntilAsync(async () => await host.ScalarAsync<bool>(
            "SELECT locked_until < now() FROM operations WHERE id = @id", new { id = submitted.Id }), Deadline);
        Assert.Equal(1, await host.LeaseRescue.RescueAsync(CancellationToken.None));
        await Eventually.WaitUntilAsync(async () => (await host.ReadAsync(submitted.Id)).Status == OperationStatus.Succeeded, Deadline);
        // The first attempt is still hanging; let it finish and try to store its result.
        host.Executions.Gate.SetResult();
        await Eventually.WaitUntilAsync(() => Task.FromResult(host.Executions.Counts.GetValueOrDefault(submitted.Id) == 2), Deadline);
        await stop.CancelAsync();
        await pump;

        var row = await host.ReadAsync(submitted.Id);
        Assert.Equal(2, row.Attempts);
        using (var result = JsonDocument.Parse(row.Result!))
        {
            Assert.Equal(2, result.RootElement.GetProperty("attempt").GetInt32());
        }

        using var history = JsonDocument.Parse(await host.ScalarAsync<string>("SELECT attempt_history::text FROM operations WHERE id = @id", new { id = submitted.Id }));
        Assert.Equal(["lease_lost", "succeeded"], history.RootElement.EnumerateArray().Select(a => a.GetProperty("outcome").GetString()));
    }

    /// <summary>Stores <paramref name="count"/> pending operations of one tenant, falling due a millisecond apart, the last at <paramref name="dueFrom"/>.</summary>
    private static async Task<Guid[]> InsertPendingAsync(EngineHost host, string owner, string kind, int count, DateTime dueFrom,
        string payload = "{}", short priority = 5)
    {
        await using var connection = new NpgsqlConnection(host.ConnectionString);
        var ids = (await connection.QueryAsync<Guid>("""
            INSERT INTO operations (id, owner, kind, status, payload, max_attempts, next_attempt_at, created_at, updated_at, priority)
            SELECT gen_random_uuid(), @owner, @kind, 'pending', CAST(@payload AS jsonb), 5, @dueFrom - (@count - i) * interval '1 millisecond', @dueFrom, @dueFrom, @priority
            FROM generate_series(1, @count) AS i
            RETURNING id
            """, new { owner, kind, count, dueFrom, payload, priority })).ToArray();
        await connection.ExecuteAsync("ANALYZE operations");
        return ids;
    }
}
