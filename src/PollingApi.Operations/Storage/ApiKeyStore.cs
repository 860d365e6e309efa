using Dapper;
using Npgsql;

namespace PollingApi.Operations.Storage;

/// <summary>One row of <c>api_keys</c>: a key's owner, scopes and hash (never the key).</summary>
internal sealed record ApiKeyRow
{
    public Guid Id { get; init; }
    public string Tenant { get; init; } = "";
    public string Name { get; init; } = "";
    public string[] Scopes { get; init; } = [];
    public byte[] KeyHash { get; init; } = [];
    public string KeyPrefix { get; init; } = "";
    public DateTime CreatedAt { get; init; }
    public DateTime? RevokedAt { get; init; }
}

/// <summary>The SQL of the <c>api_keys</c> table.</summary>
internal sealed class ApiKeyStore(NpgsqlDataSource dataSource)
{
    private const string Columns = "id, tenant, name, scopes, key_hash, key_prefix, created_at, revoked_at";

    static ApiKeyStore() => RowMapping.EnsureRegistered();

    public async Task InsertAsync(ApiKeyRow key, CancellationToken cancellationToken)
    {
        const string Sql = """
            INSERT INTO api_keys (id, tenant, name, scopes, key_hash, key_prefix, created_at)
            VALUES (@Id, @Tenant, @Name, @Scopes, @KeyHash, @KeyPrefix, @CreatedAt)
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await connection.ExecuteAsync(new CommandDefinition(Sql, key, cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>The key with this hash, unless it is revoked.</summary>
    public async Task<ApiKeyRow?> FindActiveAsync(byte[] keyHash, CancellationToken cancellationToken)
    {
        const string Sql = $"SELECT {Columns} FROM api_keys WHERE key_hash = @keyHash AND revoked_at IS NULL";
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.QuerySingleOrDefaultAsync<ApiKeyRow>(new CommandDefinition(Sql, new { keyHash }, cancellationToken: cancellationToken))
            .ConfigureAwait(false);
    }

    /// <summary>Every key (of one tenant when <paramref name="tenant"/> is given), oldest first.</summary>
    public async Task<IReadOnlyList<ApiKeyRow>> ListAsync(string? tenant, CancellationToken cancellationToken)
    {
        const string Sql = $"SELECT {Columns} FROM api_keys WHERE (@tenant::text IS NULL OR tenant = @tenant) ORDER BY created_at, id";
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var rows = await connection.QueryAsync<ApiKeyRow>(new CommandDefinition(Sql, new { tenant }, cancellationToken: cancellationToken))
            .ConfigureAwait(false);
        return rows.AsList();
    }

    /// <summary>Revokes a key. False when there is no such key or it was revoked already.</summary>
    public async Task<bool> RevokeAsync(Guid id, DateTime now, CancellationToken cancellationToken)
    {
        const string Sql = "UPDATE api_keys SET revoked_at = @now WHERE id = @id AND revoked_at IS NULL";
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.ExecuteAsync(new CommandDefinition(Sql, new { id, now }, cancellationToken: cancellationToken))
            .ConfigureAwait(false) == 1;
    }
}
