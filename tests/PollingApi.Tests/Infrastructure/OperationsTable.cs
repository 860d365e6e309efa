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

    public async Task<string?> StatusOfAsync(Guid id) => (await FindAsync(id))?.Status;
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
