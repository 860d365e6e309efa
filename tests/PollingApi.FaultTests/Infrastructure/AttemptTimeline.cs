using Npgsql;

namespace PollingApi.FaultTests.Infrastructure;

/// <summary>
/// Every attempt of the scenario's operations as the database saw it: when it was claimed (or inserted claimed), by whom,
/// when it ended and how, read from a table a trigger of the harness fills with the server's <c>clock_timestamp()</c> at
/// each claim and status change. Those times are the database's own, whatever clock the node that made the change
/// keeps: the ground truth for timing invariants. A lease renewal changes neither status nor attempt, so it is not
/// recorded.
/// </summary>
internal static class AttemptTimeline
{
    /// <summary>Adds the recording trigger to the scenario's operations table (the first node must have migrated it).</summary>
    public static async Task InstallAsync(ScenarioDatabase database, CancellationToken cancellationToken)
    {
        const string Sql = """
            CREATE TABLE fault_transitions (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id uuid NOT NULL,
                attempts integer NOT NULL,
                status text NOT NULL,
                locked_by text,
                next_attempt_at timestamptz,
                at timestamptz NOT NULL);

            CREATE FUNCTION fault_record_transition() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO fault_transitions (id, attempts, status, locked_by, next_attempt_at, at)
                VALUES (NEW.id, NEW.attempts, NEW.status, NEW.locked_by, NEW.next_attempt_at, clock_timestamp());
                RETURN NULL;
            END $$;

            CREATE TRIGGER fault_transition_inserted AFTER INSERT ON operations
                FOR EACH ROW EXECUTE FUNCTION fault_record_transition();
            CREATE TRIGGER fault_transition_updated AFTER UPDATE ON operations
                FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.attempts IS DISTINCT FROM NEW.attempts)
                EXECUTE FUNCTION fault_record_transition();
            """;
        await using var command = database.DataSource.CreateCommand(Sql);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Every operation's insert and attempts, in the order they ran.</summary>
    public static async Task<Dictionary<Guid, OperationTimeline>> ReadAsync(ScenarioDatabase database, CancellationToken cancellationToken)
    {
        const string Sql = "SELECT id, attempts, status, locked_by, next_attempt_at, at FROM fault_transitions ORDER BY seq";
        var timelines = new Dictionary<Guid, OperationTimeline>();
        await using var command = database.DataSource.CreateCommand(Sql);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var id = reader.GetGuid(0);
            int attempt = reader.GetInt32(1);
            string status = reader.GetString(2);
            string? lockedBy = reader.IsDBNull(3) ? null : reader.GetString(3);
            DateTime? nextAttemptAt = reader.IsDBNull(4) ? null : reader.GetDateTime(4);
            var at = reader.GetDateTime(5);
            if (!timelines.TryGetValue(id, out var timeline))
            {
                // The first change recorded is the insert (pending, or running when a node claimed it at insert).
                timeline = new OperationTimeline(at);
                timelines[id] = timeline;
            }

            var list = timeline.Attempts;
            var open = list.Count > 0 && list[^1].EndedAt is null ? list[^1] : null;
            if (status == "running")
            {
                list.Add(new RecordedAttempt(attempt, lockedBy, at));
            }
            else if (open is not null)
            {
                open.EndedAt = at;
                open.EndStatus = status;
                open.NextAttemptAt = status == "pending" ? nextAttemptAt : null;
            }
        }

        return timelines;
    }

    /// <summary>The database server's clock now: what the recorded times are comparable with.</summary>
    public static async Task<DateTime> DatabaseNowAsync(ScenarioDatabase database, CancellationToken cancellationToken)
    {
        await using var command = database.DataSource.CreateCommand("SELECT clock_timestamp()");
        return (DateTime)(await command.ExecuteScalarAsync(cancellationToken))!;
    }
}

/// <summary>An operation as the database recorded it: when it was stored, and its attempts in order.</summary>
internal sealed class OperationTimeline(DateTime insertedAt)
{
    public DateTime InsertedAt { get; } = insertedAt;

    public List<RecordedAttempt> Attempts { get; } = [];
}

/// <summary>One attempt as the database recorded it: claimed by <see cref="Node"/> at <see cref="StartedAt"/>, ended at <see cref="EndedAt"/>.</summary>
internal sealed class RecordedAttempt(int attempt, string? node, DateTime startedAt)
{
    public int Attempt { get; } = attempt;

    public string? Node { get; } = node;

    public DateTime StartedAt { get; } = startedAt;

    /// <summary>Null while it runs.</summary>
    public DateTime? EndedAt { get; set; }

    /// <summary>The status the operation went to: pending (a retry, or its lease was rescued), succeeded, failed, cancelled.</summary>
    public string? EndStatus { get; set; }

    /// <summary>When it ended in a retry: when the next attempt was due, as the ending node wrote it.</summary>
    public DateTime? NextAttemptAt { get; set; }

    public TimeSpan? Duration => EndedAt - StartedAt;
}

/// <summary>One entry of an operation's <c>attempt_history</c>: how its attempt ended, as the engine itself recorded it.</summary>
internal sealed record HistoryEntry(Guid Id, int Attempt, string Outcome, string? Node, DateTime? StartedAt, DateTime? EndedAt)
{
    public const string LeaseLost = "lease_lost";

    /// <summary>Every entry of every operation's attempt history.</summary>
    public static async Task<List<HistoryEntry>> ReadAllAsync(ScenarioDatabase database, CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT o.id, (e->>'attempt')::int, e->>'outcome', e->>'node', (e->>'startedAt')::timestamptz, (e->>'endedAt')::timestamptz
            FROM operations AS o CROSS JOIN LATERAL jsonb_array_elements(coalesce(o.attempt_history, '[]'::jsonb)) AS e
            """;
        var entries = new List<HistoryEntry>();
        await using var command = database.DataSource.CreateCommand(Sql);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            entries.Add(new HistoryEntry(
                reader.GetGuid(0),
                reader.IsDBNull(1) ? 0 : reader.GetInt32(1),
                reader.IsDBNull(2) ? "" : reader.GetString(2),
                reader.IsDBNull(3) ? null : reader.GetString(3),
                reader.IsDBNull(4) ? null : reader.GetDateTime(4),
                reader.IsDBNull(5) ? null : reader.GetDateTime(5)));
        }

        return entries;
    }
}

/// <summary>Reads of the scenario database that only the timing scenarios need.</summary>
internal static class ScenarioDatabaseReads
{
    /// <summary>The running operations one node holds, with the attempt it holds them on.</summary>
    public static async Task<Dictionary<Guid, int>> RunningHeldByAsync(this ScenarioDatabase database, string nodeId, CancellationToken cancellationToken)
    {
        const string Sql = "SELECT id, attempts FROM operations WHERE status = 'running' AND locked_by = @node";
        var held = new Dictionary<Guid, int>();
        await using var command = database.DataSource.CreateCommand(Sql);
        command.Parameters.Add(new NpgsqlParameter("node", nodeId));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            held[reader.GetGuid(0)] = reader.GetInt32(1);
        }

        return held;
    }

    /// <summary>When each operation was scheduled to start (<c>Operation-Scheduled-At</c>), for those that were.</summary>
    public static async Task<Dictionary<Guid, DateTime>> ScheduledAtAsync(this ScenarioDatabase database, CancellationToken cancellationToken)
    {
        const string Sql = "SELECT id, scheduled_at FROM operations WHERE scheduled_at IS NOT NULL";
        var scheduled = new Dictionary<Guid, DateTime>();
        await using var command = database.DataSource.CreateCommand(Sql);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            scheduled[reader.GetGuid(0)] = reader.GetDateTime(1);
        }

        return scheduled;
    }
}
