using System.Diagnostics;
using System.Globalization;
using Npgsql;
using PollingApi.LocalPostgres;

namespace PollingApi.Benchmarks.Infrastructure;

/// <summary>
/// The driver's own SQL on the benchmark cluster: two databases (the API's and pgbench's), the pgbench tables,
/// the durability check, the backlog of unfinished operations, the finished rows seeded before (g) and the pending ones
/// (k) seeds and reads back.
/// </summary>
internal sealed class BenchmarkDatabase : IAsyncDisposable
{
    public const string ApiDatabase = "pollingapi";

    /// <summary>The Hangfire peer's database (h), in the same cluster.</summary>
    public const string PeerDatabase = "hangfire";
    public const string PgBenchDatabase = "bench";

    private readonly NpgsqlDataSource _api;

    // UUIDv7 ids built from gen_random_uuid() (version 4: 122 random bits, variant 10): the first 48 bits are replaced by
    // the Unix time in milliseconds of t.created_at, the version nibble by 7. PostgreSQL 15 has no uuidv7().
    private const string UuidV7OfCreatedAt = """
        encode(set_byte(overlay(uuid_send(gen_random_uuid())
                                PLACING substring(int8send((extract(epoch FROM t.created_at) * 1000)::bigint) FROM 3)
                                FROM 1 FOR 6),
                        6, 112 | floor(random() * 16)::int), 'hex')::uuid
        """;

    // A no-op sleep's payload as the API stores it, and a W3C traceparent.
    private const string SleepPayload = """'{"durationMs": 0, "failTimes": 0, "failPermanently": false}'::jsonb""";
    private const string RandomTraceParent = "'00-' || md5(random()::text) || '-' || substr(md5(random()::text), 1, 16) || '-00'";

    private BenchmarkDatabase(NpgsqlDataSource api) => _api = api;

    /// <summary>The settings a benchmark must not run without, as the server reports them.</summary>
    public required IReadOnlyDictionary<string, string> Durability { get; init; }

    /// <summary>Creates both databases and pgbench's tables; refuses a cluster whose commits are not durable.</summary>
    public static async Task<BenchmarkDatabase> CreateAsync(LocalPostgresCluster cluster, int selectRows, CancellationToken cancellationToken)
    {
        var durability = new Dictionary<string, string>(StringComparer.Ordinal);
        await using (var admin = await OpenAsync(cluster.ConnectionString, cancellationToken))
        {
            foreach (string setting in (string[])["fsync", "synchronous_commit", "full_page_writes", "wal_sync_method", "shared_buffers", "server_version"])
            {
                await using var show = new NpgsqlCommand($"SHOW {setting}", admin);
                durability[setting] = (string)(await show.ExecuteScalarAsync(cancellationToken))!;
            }

            if (durability["fsync"] != "on" || durability["synchronous_commit"] != "on")
            {
                throw new InvalidOperationException(
                    $"The cluster is not durable (fsync={durability["fsync"]}, synchronous_commit={durability["synchronous_commit"]}); " +
                    "the benchmark measures durable commits only.");
            }

            await ExecuteAsync(admin, $"CREATE DATABASE {ApiDatabase}", cancellationToken);
            await ExecuteAsync(admin, $"CREATE DATABASE {PgBenchDatabase}", cancellationToken);
            await ExecuteAsync(admin, $"CREATE DATABASE {PeerDatabase}", cancellationToken);
        }

        await using (var bench = await OpenAsync(cluster.ConnectionStringFor(PgBenchDatabase), cancellationToken))
        {
            await ExecuteAsync(bench, "CREATE TABLE bench_insert (id bigserial PRIMARY KEY, v int)", cancellationToken);
            await ExecuteAsync(bench, "CREATE TABLE bench_select (id int PRIMARY KEY, v int)", cancellationToken);
            await using var fill = new NpgsqlCommand("INSERT INTO bench_select (id, v) SELECT i, i FROM generate_series(1, @rows) AS i", bench);
            fill.Parameters.AddWithValue("rows", selectRows);
            await fill.ExecuteNonQueryAsync(cancellationToken);
            await ExecuteAsync(bench, "VACUUM ANALYZE bench_select", cancellationToken);
        }

        return new BenchmarkDatabase(NpgsqlDataSource.Create(cluster.ConnectionStringFor(ApiDatabase)))
        {
            Durability = durability,
        };
    }

    /// <summary>
    /// Loads pg_stat_statements into the API's database: it must be preloaded, so the server is restarted (before the
    /// API starts: nothing but the driver is connected).
    /// </summary>
    public static async Task EnableStatementsAsync(LocalPostgresCluster cluster, CancellationToken cancellationToken)
    {
        await using (var admin = await OpenAsync(cluster.ConnectionString, cancellationToken))
        {
            await ExecuteAsync(admin, "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'", cancellationToken);
        }

        NpgsqlConnection.ClearAllPools();
        await cluster.StopServerAsync(cancellationToken);
        await cluster.StartServerAsync(cancellationToken);
        await using var api = await OpenAsync(cluster.ConnectionStringFor(ApiDatabase), cancellationToken);
        await ExecuteAsync(api, "CREATE EXTENSION pg_stat_statements", cancellationToken);
    }

    public async Task ResetStatementsAsync(CancellationToken cancellationToken)
    {
        await using var command = _api.CreateCommand("SELECT pg_stat_statements_reset()");
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The statements of the API's database that took the most execution time since the last reset, as text lines.</summary>
    public async Task<IReadOnlyList<string>> TopStatementsAsync(int count, CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT calls, total_exec_time, total_exec_time / greatest(calls, 1) AS mean_ms,
                   100 * total_exec_time / nullif(sum(total_exec_time) OVER (), 0) AS share, rows,
                   left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS query
            FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND query NOT LIKE '%pg_stat_statements%'
            ORDER BY total_exec_time DESC
            LIMIT @count
            """;
        await using var command = _api.CreateCommand(Sql);
        command.Parameters.AddWithValue("count", count);
        var lines = new List<string> { "    calls   total ms  mean ms  share      rows  statement" };
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            double share = reader.IsDBNull(3) ? 0 : reader.GetDouble(3);
            lines.Add(string.Create(CultureInfo.InvariantCulture,
                $"{reader.GetInt64(0),9} {reader.GetDouble(1),10:0.0} {reader.GetDouble(2),8:0.000} {share,5:0.0}% {reader.GetInt64(4),9}  {reader.GetString(5)}"));
        }

        return lines;
    }

    /// <summary>
    /// Operations not finished yet: pending (due or not) and running. Counted as two counts whose predicates are those of
    /// the partial indexes of pending and running rows: planned as one <c>status IN (...)</c>, the count became a
    /// sequential scan of the whole table once it held millions of finished rows, and the drain polling it every 100 ms
    /// then measured its own scans (at 10,000,000 rows (g)'s catch-up read 0.34 of the empty table's rate).
    /// </summary>
    public async Task<long> CountUnfinishedAsync(CancellationToken cancellationToken)
    {
        await using var command = _api.CreateCommand(
            "SELECT (SELECT count(*) FROM operations WHERE status = 'pending') + (SELECT count(*) FROM operations WHERE status = 'running')");
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    public async Task<long> CountOperationsAsync(CancellationToken cancellationToken)
    {
        await using var command = _api.CreateCommand("SELECT count(*) FROM operations");
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>
    /// Waits until the workers have finished every operation; returns how many there were and how long it took.
    /// Throws when they are not done within <paramref name="timeout"/>.
    /// </summary>
    public async Task<(long Backlog, TimeSpan Elapsed)> WaitForBacklogAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        long backlog = await CountUnfinishedAsync(cancellationToken);
        long left = backlog;
        while (left > 0)
        {
            if (watch.Elapsed > timeout)
            {
                throw new TimeoutException($"{left} of {backlog} operations were still unfinished after {timeout.TotalSeconds:0} s.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
            left = await CountUnfinishedAsync(cancellationToken);
        }

        return (backlog, backlog == 0 ? TimeSpan.Zero : watch.Elapsed);
    }

    /// <summary>(i) long-polls: when each of <paramref name="ids"/> completed, by the database's clock.</summary>
    public async Task<Dictionary<Guid, DateTimeOffset>> CompletedAtAsync(Guid[] ids, CancellationToken cancellationToken)
    {
        await using var command = _api.CreateCommand("SELECT id, completed_at FROM operations WHERE id = ANY(@ids) AND completed_at IS NOT NULL");
        command.Parameters.AddWithValue("ids", ids);
        var completed = new Dictionary<Guid, DateTimeOffset>(ids.Length);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            completed[reader.GetGuid(0)] = new DateTimeOffset(DateTime.SpecifyKind(reader.GetDateTime(1), DateTimeKind.Utc));
        }

        return completed;
    }

    /// <summary>Ids of up to <paramref name="count"/> succeeded operations, the newest first.</summary>
    public async Task<Guid[]> FinishedIdsAsync(int count, CancellationToken cancellationToken)
    {
        await using var command = _api.CreateCommand("SELECT id FROM operations WHERE status = 'succeeded' ORDER BY id DESC LIMIT @count");
        command.Parameters.AddWithValue("count", count);
        var ids = new List<Guid>(count);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            ids.Add(reader.GetGuid(0));
        }

        return [.. ids];
    }

    /// <summary>
    /// Inserts <paramref name="rows"/> succeeded <c>diagnostics.sleep</c> operations, shaped like the rows the API writes,
    /// created evenly over the last day in id order (as production would have inserted them), then VACUUM ANALYZE and a
    /// CHECKPOINT, so the measurement after it neither finds a stale plan nor pays for the seed's dirty pages.
    /// </summary>
    public async Task SeedFinishedOperationsAsync(int rows, CancellationToken cancellationToken)
    {
        const string Sql = $$"""
            INSERT INTO operations (id, owner, kind, status, payload, result, error, idempotency_key, request_hash, attempts,
                                    max_attempts, next_attempt_at, locked_by, locked_until, cancel_requested, progress,
                                    trace_parent, created_at, updated_at, completed_at, started_at, version)
            SELECT {{UuidV7OfCreatedAt}},
                   'default', 'diagnostics.sleep', 'succeeded',
                   {{SleepPayload}},
                   '{"sleptMs": 0, "attempt": 1}'::jsonb,
                   NULL, NULL, NULL, 1, 5, t.created_at, NULL, NULL, false, NULL,
                   {{RandomTraceParent}},
                   t.created_at, t.created_at + interval '2 ms', t.created_at + interval '2 ms', t.created_at + interval '1 ms', 3
            FROM (SELECT now() - interval '1 day' + (interval '1 day' - interval '1 minute') * i / @rows AS created_at
                  FROM generate_series(0, @rows - 1) AS i) AS t
            """;
        await using var connection = await _api.OpenConnectionAsync(cancellationToken);
        await using (var insert = new NpgsqlCommand(Sql, connection) { CommandTimeout = 1800 })
        {
            insert.Parameters.AddWithValue("rows", rows);
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        await using (var vacuum = new NpgsqlCommand("VACUUM ANALYZE operations", connection) { CommandTimeout = 1800 })
        {
            await vacuum.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var checkpoint = new NpgsqlCommand("CHECKPOINT", connection) { CommandTimeout = 600 };
        await checkpoint.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Inserts <paramref name="rows"/> pending <c>diagnostics.sleep</c> no-ops, shaped like the rows a submit stores: due at
    /// once (created evenly over the minute before, in id order), attempts 0, the default priority and attempts. With one
    /// owner they all belong to it; with more, to each in turn. Then VACUUM ANALYZE and a CHECKPOINT, so that each drain
    /// starts from a table without the previous one's dead rows and does not pay for the seed's dirty pages.
    /// </summary>
    public async Task SeedPendingOperationsAsync(int rows, IReadOnlyList<string> owners, CancellationToken cancellationToken)
    {
        const string Sql = $$"""
            INSERT INTO operations (id, owner, kind, status, payload, attempts, max_attempts, next_attempt_at, trace_parent,
                                    created_at, updated_at, priority)
            SELECT {{UuidV7OfCreatedAt}},
                   (@owners::text[])[1 + t.i % cardinality(@owners::text[])], 'diagnostics.sleep', 'pending',
                   {{SleepPayload}},
                   0, 5, t.created_at, {{RandomTraceParent}}, t.created_at, t.created_at, 5
            FROM (SELECT i, now() - interval '1 minute' + interval '1 minute' * i / @rows AS created_at
                  FROM generate_series(0, @rows - 1) AS i) AS t
            """;
        await using var connection = await _api.OpenConnectionAsync(cancellationToken);
        await using (var insert = new NpgsqlCommand(Sql, connection) { CommandTimeout = 1800 })
        {
            insert.Parameters.AddWithValue("rows", rows);
            insert.Parameters.AddWithValue("owners", owners.ToArray());
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        await using (var vacuum = new NpgsqlCommand("VACUUM ANALYZE operations", connection) { CommandTimeout = 1800 })
        {
            await vacuum.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var checkpoint = new NpgsqlCommand("CHECKPOINT", connection) { CommandTimeout = 600 };
        await checkpoint.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// (k): waits until no operation of <paramref name="owners"/> is pending and none at all is running. Asks every 100 ms
    /// through the partial indexes of pending and running rows, as <see cref="CountUnfinishedAsync"/> does.
    /// Throws when they are not done within <paramref name="timeout"/>.
    /// </summary>
    public async Task WaitUntilDrainedAsync(IReadOnlyList<string> owners, TimeSpan timeout, CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT EXISTS (SELECT FROM operations WHERE status = 'pending' AND owner = ANY(@owners))
                OR EXISTS (SELECT FROM operations WHERE status = 'running')
            """;
        var watch = Stopwatch.StartNew();
        await using var command = _api.CreateCommand(Sql);
        command.Parameters.AddWithValue("owners", owners.ToArray());
        while ((bool)(await command.ExecuteScalarAsync(cancellationToken))!)
        {
            if (watch.Elapsed > timeout)
            {
                long left = await CountUnfinishedAsync(cancellationToken);
                throw new TimeoutException($"{left} operations were still unfinished after {timeout.TotalSeconds:0} s.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
        }
    }

    /// <summary>
    /// What the workers did with the operations of <paramref name="owners"/>: how many there are, how many succeeded,
    /// how many took more than one attempt, how many claims took them (a claim writes one <c>started_at</c> for its whole
    /// batch), and the first claim's start and the last handler's end as the API stored them.
    /// </summary>
    public async Task<DrainedOperations> ReadDrainedAsync(IReadOnlyList<string> owners, CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT count(*), count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE attempts > 1),
                   count(DISTINCT started_at), min(started_at), max(completed_at)
            FROM operations
            WHERE owner = ANY(@owners)
            """;
        await using var command = _api.CreateCommand(Sql);
        command.Parameters.AddWithValue("owners", owners.ToArray());
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new DrainedOperations(reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3),
            reader.IsDBNull(4) ? null : reader.GetDateTime(4), reader.IsDBNull(5) ? null : reader.GetDateTime(5));
    }

    public ValueTask DisposeAsync() => _api.DisposeAsync();

    private static async Task<NpgsqlConnection> OpenAsync(string connectionString, CancellationToken cancellationToken)
    {
        var connection = new NpgsqlConnection(connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 600 };
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}

/// <summary>(k): the operations of a drain as the table holds them afterwards; the times are the API's.</summary>
internal sealed record DrainedOperations(long Count, long Succeeded, long Retried, long Claims, DateTime? FirstStarted, DateTime? LastCompleted);
