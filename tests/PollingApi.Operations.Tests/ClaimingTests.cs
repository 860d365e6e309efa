using System.Text.Json;
using Dapper;
using Npgsql;
using PollingApi.Operations.Tests.Infrastructure;
using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Tests;

public sealed class ClaimingTests
{
    [Fact]
    public async Task FourConcurrentWorkersProcessTwoThousandOperationsExactlyOnceEach()
    {
        const int Count = 2000;
        string database = await PostgresServer.CreateDatabaseAsync();
        var executions = new ExecutionLog();
        var settings = new Dictionary<string, string?> { ["Operations:MaxConcurrency"] = "16" };
        var nodes = new List<EngineHost>();
        for (int i = 0; i < 4; i++)
        {
            nodes.Add(await EngineHost.StartAsync(database, $"node-{i}", settings, executions: executions));
        }

        await using (var connection = new NpgsqlConnection(database))
        {
            await connection.ExecuteAsync("""
                INSERT INTO operations (id, owner, kind, status, payload, max_attempts, next_attempt_at, created_at, updated_at)
                SELECT gen_random_uuid(), 'default', 'test.run', 'pending', '{}', 5, now(), now(), now()
                FROM generate_series(1, @Count)
                """, new { Count });
        }

        using var stop = new CancellationTokenSource();
        var pumps = nodes.Select(n => n.Worker.RunAsync(stop.Token)).ToList();
        await Eventually.WaitUntilAsync(
            async () => await nodes[0].ScalarAsync<long>("SELECT count(*) FROM operations WHERE status = 'succeeded'") == Count,
            TimeSpan.FromSeconds(90));
        await stop.CancelAsync();
        await Task.WhenAll(pumps);

        Assert.Equal(Count, executions.Counts.Count);
        Assert.All(executions.Counts, pair => Assert.Equal(1, pair.Value));
        await using (var connection = new NpgsqlConnection(database))
        {
            var rows = (await connection.QueryAsync<(int Attempts, string? Node, string? LockedBy)>(
                "SELECT attempts, result->>'node', locked_by FROM operations")).ToList();
            Assert.Equal(Count, rows.Count);
            Assert.All(rows, row =>
            {
                Assert.Equal(1, row.Attempts);
                Assert.StartsWith("node-", row.Node, StringComparison.Ordinal);
                Assert.Null(row.LockedBy);
            });
            // Every worker took a share: the claim spreads work rather than one node winning every batch.
            Assert.True(rows.Select(r => r.Node).Distinct().Count() >= 2, "work was spread across workers");
        }

        foreach (var node in nodes)
        {
            await node.DisposeAsync();
        }
    }

    [Fact]
    public async Task AClaimTakesOnlyDueOperationsAndSkipsRowsLockedByAnotherClaimer()
    {
        var time = FakeTime.Create();
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "claimer", timeProvider: time);
        var now = time.GetUtcNow().UtcDateTime;
        var due = await host.SubmitAsync(new TestRequest(), now);
        var later = await host.SubmitAsync(new TestRequest(), now.AddMinutes(1));

        await using var blocker = new NpgsqlConnection(host.ConnectionString);
        await blocker.OpenAsync();
        await using var transaction = await blocker.BeginTransactionAsync();
        await blocker.ExecuteAsync("SELECT id FROM operations WHERE id = @id FOR UPDATE", new { id = due.Id }, transaction);

        var whileLocked = await host.Attempts.ClaimAsync("claimer", 10, now, now.AddSeconds(30), CancellationToken.None);
        Assert.Empty(whileLocked);

        await transaction.RollbackAsync();
        var claimed = await host.Attempts.ClaimAsync("claimer", 10, now, now.AddSeconds(30), CancellationToken.None);
        var operation = Assert.Single(claimed);
        Assert.Equal(due.Id, operation.Id);
        Assert.Equal(1, operation.Attempts);

        var row = await host.ReadAsync(due.Id);
        Assert.Equal(OperationStatus.Running, row.Status);
        Assert.Equal("claimer", row.LockedBy);
        Assert.Equal(now.AddSeconds(30), row.LockedUntil);
        Assert.Equal(OperationStatus.Pending, (await host.ReadAsync(later.Id)).Status);
    }

    [Fact]
    public async Task AClaimNeverTakesMoreThanItsLimitEvenOnAFreshUnanalyzedTable()
    {
        // On a table the planner knows nothing about, "WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)"
        // can become a nested-loop semi join that claims every due row.
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "limited");
        await using (var connection = new NpgsqlConnection(host.ConnectionString))
        {
            await connection.ExecuteAsync("""
                INSERT INTO operations (id, owner, kind, status, payload, max_attempts, next_attempt_at, created_at, updated_at)
                SELECT gen_random_uuid(), 'default', 'test.run', 'pending', '{}', 5, now() - interval '1 minute', now(), now()
                FROM generate_series(1, 200)
                """);
        }

        var now = TimeProvider.System.GetUtcNow().UtcDateTime;
        var claimed = await host.Attempts.ClaimAsync("limited", 32, now, now.AddSeconds(30), CancellationToken.None);

        Assert.Equal(32, claimed.Count);
        Assert.Equal(32, await host.ScalarAsync<long>("SELECT count(*) FROM operations WHERE status = 'running'"));
        Assert.Equal(168, await host.ScalarAsync<long>("SELECT count(*) FROM operations WHERE status = 'pending'"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ClaimingReadsOnlyThePartialIndexOfQueuedRows(bool capped)
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "planner");
        await using var connection = new NpgsqlConnection(host.ConnectionString);
        await connection.OpenAsync();
        await connection.ExecuteAsync("SET enable_seqscan = off");
        await using var explain = new NpgsqlCommand("EXPLAIN " + (capped ? AttemptStore.CappedClaimSql : AttemptStore.ClaimSql), connection);
        var now = TimeProvider.System.GetUtcNow().UtcDateTime;
        var rules = new ClaimRules(["paused.kind"], ["test.run"], [2], 4, ["big"], [8]);
        explain.Parameters.AddWithValue("nodeId", "planner");
        explain.Parameters.AddWithValue("limit", 8);
        explain.Parameters.AddWithValue("now", now);
        explain.Parameters.AddWithValue("leaseUntil", now.AddSeconds(30));
        explain.Parameters.AddWithValue("paused", rules.PausedKinds);
        explain.Parameters.AddWithValue("cappedKinds", rules.CappedKinds);
        explain.Parameters.AddWithValue("kindCaps", rules.KindCaps);
        explain.Parameters.AddWithValue("tenantCap", rules.TenantCap!);
        explain.Parameters.AddWithValue("capTenants", rules.CapTenants);
        explain.Parameters.AddWithValue("tenantCaps", rules.TenantCaps);
        var lines = new List<string>();
        await using (var reader = await explain.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                lines.Add(reader.GetString(0));
            }
        }

        string plan = string.Join('\n', lines);
        Assert.Contains("operations_queue_idx", plan, StringComparison.Ordinal);
        Assert.DoesNotContain("Seq Scan on operations", plan, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AClaimNeverReadsTheRowsScheduledBeyondNow()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "scheduled-planner");
        await using var connection = new NpgsqlConnection(host.ConnectionString);
        await connection.OpenAsync();
        // One due row behind 2,000 scheduled an hour ahead in the same queue (same tenant, kind and priority).
        await connection.ExecuteAsync("""
            INSERT INTO operations (id, owner, kind, status, payload, max_attempts, next_attempt_at, created_at, updated_at)
            SELECT gen_random_uuid(), 'default', 'test.run', 'pending', '{}', 5, now() + interval '1 hour', now(), now()
            FROM generate_series(1, 2000);
            INSERT INTO operations (id, owner, kind, status, payload, max_attempts, next_attempt_at, created_at, updated_at)
            VALUES ('00000000-0000-7000-8000-000000000001', 'default', 'test.run', 'pending', '{}', 5, now() - interval '1 second', now(), now());
            ANALYZE operations;
            """);

        await using var explain = new NpgsqlCommand("EXPLAIN (ANALYZE, FORMAT JSON) " + AttemptStore.ClaimSql, connection);
        var now = TimeProvider.System.GetUtcNow().UtcDateTime;
        explain.Parameters.AddWithValue("nodeId", "scheduled-planner");
        explain.Parameters.AddWithValue("limit", 8);
        explain.Parameters.AddWithValue("now", now);
        explain.Parameters.AddWithValue("leaseUntil", now.AddSeconds(30));
        explain.Parameters.AddWithValue("paused", Array.Empty<string>());
        using var plan = JsonDocument.Parse((string)(await explain.ExecuteScalarAsync())!);

        // The queue's scan ends where the claim keys pass now: the scheduled rows are neither fetched nor filtered out.
        var scans = PlanNodes(plan.RootElement[0].GetProperty("Plan"))
            .Where(node => node.TryGetProperty("Relation Name", out var table) && table.GetString() == "operations")
            .ToList();
        Assert.Equal(0, scans.Sum(scan => scan.TryGetProperty("Rows Removed by Filter", out var removed) ? removed.GetInt64() : 0));
        Assert.Contains(scans, scan => scan.TryGetProperty("Index Name", out var index) && index.GetString() == "operations_queue_idx"
            && scan.TryGetProperty("Index Cond", out var condition) && condition.GetString()!.Contains("operations_claim_key", StringComparison.Ordinal));
        Assert.Equal("running", await host.ScalarAsync<string>("SELECT status FROM operations WHERE id = '00000000-0000-7000-8000-000000000001'"));
        Assert.Equal(2000, await host.ScalarAsync<long>("SELECT count(*) FROM operations WHERE status = 'pending' AND next_attempt_at > now()"));

        static IEnumerable<JsonElement> PlanNodes(JsonElement node)
        {
            yield return node;
            if (node.TryGetProperty("Plans", out var children))
            {
                foreach (var child in children.EnumerateArray().SelectMany(PlanNodes))
                {
                    yield return child;
                }
            }
        }
    }

    [Fact]
    public async Task AnOutcomeUpdateLooksItsRowUpByPrimaryKeyEvenWhenStatisticsSeeNoRunningRows()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "fence-planner");
        await using var connection = new NpgsqlConnection(host.ConnectionString);
        await connection.OpenAsync();
        // A table of finished history with a handful of running rows the statistics have not seen yet.
        await connection.ExecuteAsync("""
            INSERT INTO operations (id, owner, kind, status, payload, result, attempts, max_attempts, next_attempt_at, created_at, updated_at, completed_at)
            SELECT gen_random_uuid(), 'default', 'test.run', 'succeeded', '{}', '{}', 1, 5, now(), now(), now(), now()
            FROM generate_series(1, 20000);
            ANALYZE operations;
            INSERT INTO operations (id, owner, kind, status, payload, attempts, max_attempts, next_attempt_at, locked_by, locked_until, created_at, updated_at)
            SELECT gen_random_uuid(), 'default', 'test.run', 'running', '{}', 1, 5, now(), 'fence-planner', now() + interval '1 minute', now(), now()
            FROM generate_series(1, 50);
            SET plan_cache_mode = force_generic_plan;
            """);

        // The plans a prepared statement gets once Npgsql prepares it: generic, parameters unknown.
        await using var single = new NpgsqlCommand("""
            EXPLAIN UPDATE operations SET status = 'failed', locked_by = NULL, locked_until = NULL, completed_at = now()
            WHERE id = $1 AND locked_by = $2 AND attempts = $3
            """, connection);
        single.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = Guid.CreateVersion7() });
        single.Parameters.Add(new NpgsqlParameter<string> { TypedValue = "fence-planner" });
        single.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 1 });
        string singlePlan = await PlanAsync(single);

        await using var batch = new NpgsqlCommand("""
            EXPLAIN UPDATE operations AS o SET status = 'succeeded', locked_by = NULL, locked_until = NULL, completed_at = now()
            FROM unnest($1, $2, $3) AS u(id, node_id, attempt)
            WHERE o.id = u.id AND o.locked_by = u.node_id AND o.attempts = u.attempt
            """, connection);
        batch.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = [Guid.CreateVersion7()] });
        batch.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = ["fence-planner"] });
        batch.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = [1] });
        string batchPlan = await PlanAsync(batch);

        Assert.Contains("operations_pkey", singlePlan, StringComparison.Ordinal);
        Assert.DoesNotContain("operations_lease_idx", singlePlan, StringComparison.Ordinal);
        Assert.Contains("operations_pkey", batchPlan, StringComparison.Ordinal);
        Assert.DoesNotContain("operations_lease_idx", batchPlan, StringComparison.Ordinal);

        static async Task<string> PlanAsync(NpgsqlCommand explain)
        {
            var lines = new List<string>();
            await using var reader = await explain.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                lines.Add(reader.GetString(0));
            }

            return string.Join('\n', lines);
        }
    }
}
