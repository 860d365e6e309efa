using System.Diagnostics;
using Npgsql;
using PollingApi.LocalPostgres;

namespace PollingApi.FaultTests.Infrastructure;

/// <summary>
/// A scenario's own database in the harness's cluster, and the harness's direct reads of it: the ground truth the
/// invariants are checked against, independent of what the API says.
/// </summary>
internal sealed class ScenarioDatabase : IAsyncDisposable
{
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(10);

    private ScenarioDatabase(string nodeConnectionString, NpgsqlDataSource dataSource)
    {
        NodeConnectionString = nodeConnectionString;
        DataSource = dataSource;
    }

    /// <summary>What the nodes are given: a pool small enough that a handful of nodes stay below max_connections.</summary>
    public string NodeConnectionString { get; }

    public NpgsqlDataSource DataSource { get; }

    public static async Task<ScenarioDatabase> CreateAsync(LocalPostgresCluster cluster, string name, CancellationToken cancellationToken)
    {
        // Unpooled: a pooled connection would not have survived the outage scenario's restart of the server.
        var adminConnectionString = new NpgsqlConnectionStringBuilder(cluster.ConnectionString) { Pooling = false };
        await using (var admin = new NpgsqlConnection(adminConnectionString.ConnectionString))
        {
            await admin.OpenAsync(cancellationToken);
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", admin);
            await create.ExecuteNonQueryAsync(cancellationToken);
        }

        var nodes = new NpgsqlConnectionStringBuilder(cluster.ConnectionStringFor(name)) { MaxPoolSize = 50 };
        var harness = new NpgsqlConnectionStringBuilder(cluster.ConnectionStringFor(name)) { MaxPoolSize = 8, Timeout = 5 };
        return new ScenarioDatabase(nodes.ConnectionString, NpgsqlDataSource.Create(harness.ConnectionString));
    }

    /// <summary>How many operations are not terminal yet.</summary>
    public async Task<long> CountUnfinishedAsync(CancellationToken cancellationToken)
    {
        const string Sql = "SELECT count(*) FROM operations WHERE status NOT IN ('succeeded', 'failed', 'cancelled')";
        await using var command = DataSource.CreateCommand(Sql);
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>
    /// Waits until no operation is unfinished, reading the database every half second. Returns how long that took,
    /// or null when <paramref name="deadline"/> passed first. Database errors (it may just have come back) are retried.
    /// </summary>
    public async Task<TimeSpan?> WaitUntilAllTerminalAsync(TimeSpan deadline, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var nextProgress = ProgressInterval;
        while (watch.Elapsed < deadline)
        {
            try
            {
                long unfinished = await CountUnfinishedAsync(cancellationToken);
                if (unfinished == 0)
                {
                    return watch.Elapsed;
                }

                if (watch.Elapsed >= nextProgress)
                {
                    Console.WriteLine($"  {unfinished} operations not terminal yet after {watch.Elapsed.TotalSeconds:0} s");
                    nextProgress += ProgressInterval;
                }
            }
            catch (NpgsqlException)
            {
                // Not reachable yet: try again until the deadline.
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken);
        }

        return null;
    }

    /// <summary>Every operation row, as the invariants need it.</summary>
    public async Task<Dictionary<Guid, StoredOperation>> ReadOperationsAsync(CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT id, kind, status, attempts, max_attempts, locked_by, result::text, error->>'type'
            FROM operations
            """;
        var rows = new Dictionary<Guid, StoredOperation>();
        await using var command = DataSource.CreateCommand(Sql);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var row = new StoredOperation(
                reader.GetGuid(0),
                reader.GetString(1),
                reader.GetString(2),
                reader.GetInt32(3),
                reader.GetInt32(4),
                reader.IsDBNull(5) ? null : reader.GetString(5),
                reader.IsDBNull(6) ? null : reader.GetString(6),
                reader.IsDBNull(7) ? null : reader.GetString(7));
            rows[row.Id] = row;
        }

        return rows;
    }

    /// <summary>
    /// Every webhook delivery (an operation of kind <c>webhooks.deliver</c>), with the event and the operation it is about
    /// as the trigger stored them in its payload.
    /// </summary>
    public async Task<List<StoredDelivery>> ReadDeliveriesAsync(CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT id, status, attempts, error->>'type', payload->>'type', (payload->'data'->>'id')::uuid
            FROM operations
            WHERE kind = 'webhooks.deliver'
            """;
        var rows = new List<StoredDelivery>();
        await using var command = DataSource.CreateCommand(Sql);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(new StoredDelivery(
                reader.GetGuid(0),
                reader.GetString(1),
                reader.GetInt32(2),
                reader.IsDBNull(3) ? null : reader.GetString(3),
                reader.IsDBNull(4) ? null : reader.GetString(4),
                reader.IsDBNull(5) ? null : reader.GetGuid(5)));
        }

        return rows;
    }

    /// <summary>How many operations are running, per node (<c>locked_by</c>).</summary>
    public async Task<Dictionary<string, long>> CountRunningByNodeAsync(CancellationToken cancellationToken)
    {
        const string Sql = "SELECT locked_by, count(*) FROM operations WHERE status = 'running' GROUP BY locked_by";
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        await using var command = DataSource.CreateCommand(Sql);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            counts[reader.GetString(0)] = reader.GetInt64(1);
        }

        return counts;
    }

    /// <summary>Every running operation's node (<c>locked_by</c>), when its attempt started and whether its lease has expired.</summary>
    public async Task<List<RunningLease>> ReadRunningAsync(CancellationToken cancellationToken)
    {
        const string Sql = "SELECT locked_by, started_at, locked_until < now() FROM operations WHERE status = 'running'";
        var rows = new List<RunningLease>();
        await using var command = DataSource.CreateCommand(Sql);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(new RunningLease(reader.GetString(0), reader.GetDateTime(1), reader.GetBoolean(2)));
        }

        return rows;
    }

    public async Task<bool> TableExistsAsync(string table, CancellationToken cancellationToken)
    {
        await using var command = DataSource.CreateCommand("SELECT to_regclass(@table) IS NOT NULL");
        command.Parameters.AddWithValue("table", table);
        return (bool)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    public async ValueTask DisposeAsync() => await DataSource.DisposeAsync();
}

/// <summary>An operation row as stored: what the invariants compare with what the harness submitted.</summary>
internal sealed record StoredOperation(
    Guid Id,
    string Kind,
    string Status,
    int Attempts,
    int MaxAttempts,
    string? LockedBy,
    string? ResultJson,
    string? ErrorType)
{
    public bool IsTerminal => Status is "succeeded" or "failed" or "cancelled";
}

/// <summary>A running operation's lease: its node, when its attempt started, and whether it expired (lease rescue has yet to return it).</summary>
internal sealed record RunningLease(string Node, DateTime StartedAt, bool Expired);

/// <summary>A stored webhook delivery: its own operation row, and the event (type, operation id) its payload carries.</summary>
internal sealed record StoredDelivery(
    Guid Id,
    string Status,
    int Attempts,
    string? ErrorType,
    string? EventType,
    Guid? OperationId);
