using Npgsql;

namespace PollingApi.Tests.Infrastructure;

/// <summary>Reads the <c>operations</c> table directly, so tests can assert what was stored.</summary>
public sealed class OperationsTable(string connectionString)
{
    public async Task<long> CountAsync()
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM operations", connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>How many of <paramref name="owner"/>'s operations are <paramref name="status"/>.</summary>
    public async Task<long> CountAsync(string owner, string status)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM operations WHERE owner = @owner AND status = @status", connection);
        command.Parameters.AddWithValue("owner", owner);
        command.Parameters.AddWithValue("status", status);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>
    /// Stores <paramref name="count"/> pending <c>diagnostics.sleep</c> operations of <paramref name="owner"/>, scheduled an
    /// hour ahead so that no worker starts them, in one statement: for tests that need more operations than the API would
    /// make quickly. Returns their ids, in the order the table sorts them.
    /// </summary>
    public async Task<Guid[]> InsertScheduledAsync(string owner, int count)
    {
        var ids = Enumerable.Range(0, count).Select(_ => Guid.CreateVersion7()).Order().ToArray();
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("""
            INSERT INTO operations (id, owner, kind, status, payload, attempts, max_attempts, next_attempt_at, scheduled_at,
                                    created_at, updated_at)
            SELECT id, @owner, 'diagnostics.sleep', 'pending', '{"durationMs": 1}'::jsonb, 0, 5, now() + interval '1 hour',
                   now() + interval '1 hour', now(), now()
            FROM unnest(@ids) AS id
            """, connection);
        command.Parameters.AddWithValue("owner", owner);
        command.Parameters.AddWithValue("ids", ids);
        if (await command.ExecuteNonQueryAsync() != count)
        {
            throw new InvalidOperationException($"Not all {count} operations were stored.");
        }

        return ids;
    }

    /// <summary>Whether cancellation of the operation was requested (its <c>cancel_requested</c>).</summary>
    public async Task<bool> CancelRequestedAsync(Guid id)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT cancel_requested FROM operations WHERE id = @id", connection);
        command.Parameters.AddWithValue("id", id);
        return await command.ExecuteScalarAsync() as bool?
               ?? throw new InvalidOperationException($"The operations table has no row {id}.");
    }

    public async Task<StoredOperation?> FindAsync(Guid id)
    {
        const string Sql = """
            SELECT id, owner, kind, status, payload::text, result::text, error::text, attempts, max_attempts,
                   locked_by, created_at, updated_at, completed_at
            FROM operations WHERE id = @id
            """;
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(Sql, connection);
        command.Parameters.AddWithValue("id", id);
        await using var reader = await command.ExecuteReaderAsync();
        if (!await reader.ReadAsync())
        {
            return null;
        }

        return new StoredOperation(
            reader.GetGuid(0),
            reader.GetString(1),
            reader.GetString(2),
            reader.GetString(3),
            reader.GetString(4),
            await reader.IsDBNullAsync(5) ? null : reader.GetString(5),
            await reader.IsDBNullAsync(6) ? null : reader.GetString(6),
            reader.GetInt32(7),
            reader.GetInt32(8),
            await reader.IsDBNullAsync(9) ? null : reader.GetString(9),
            reader.GetDateTime(10),
            reader.GetDateTime(11),
            await reader.IsDBNullAsync(12) ? null : reader.GetDateTime(12));
    }

    public async Task<StoredOperation> GetAsync(Guid id) =>
        await FindAsync(id) ?? throw new InvalidOperationException($"The operations table has no row {id}.");

    /// <summary>The W3C trace context the operation was submitted in (its <c>trace_parent</c>).</summary>
    public async Task<string?> FindTraceParentAsync(Guid id)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT trace_parent FROM operations WHERE id = @id", connection);
        command.Parameters.AddWithValue("id", id);
        return await command.ExecuteScalarAsync() as string;
    }

    public async Task<string?> StatusOfAsync(Guid id) => (await FindAsync(id))?.Status;

    /// <summary>
    /// Ends an operation as a worker would have, with attempt 1: <c>succeeded</c> with a sleep's result, or
    /// <c>failed</c>/<c>cancelled</c> with an error. For setting up states on a node that runs no worker.
    /// </summary>
    public async Task FinishAsync(Guid id, string status)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("""
            UPDATE operations SET status = @status, completed_at = now(), attempts = 1, started_at = now(),
                   error = CASE WHEN @status <> 'succeeded' THEN '{"type":"urn:test","title":"t"}'::jsonb END,
                   result = CASE WHEN @status = 'succeeded' THEN '{"sleptMs":1,"attempt":1}'::jsonb END,
                   version = version + 1
            WHERE id = @id
            """, connection);
        command.Parameters.AddWithValue("status", status);
        command.Parameters.AddWithValue("id", id);
        if (await command.ExecuteNonQueryAsync() != 1)
        {
            throw new InvalidOperationException($"The operations table has no row {id}.");
        }
    }
}

/// <summary>One row of the <c>operations</c> table; the jsonb columns as text.</summary>
public sealed record StoredOperation(
    Guid Id,
    string Owner,
    string Kind,
    string Status,
    string Payload,
    string? Result,
    string? Error,
    int Attempts,
    int MaxAttempts,
    string? LockedBy,
    DateTime CreatedAt,
    DateTime UpdatedAt,
    DateTime? CompletedAt);
