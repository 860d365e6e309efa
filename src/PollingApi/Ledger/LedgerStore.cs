using Dapper;
using Npgsql;

namespace PollingApi.Ledger;

/// <summary>Every statement on <c>accounts</c> and <c>ledger_entries</c>.</summary>
public sealed class LedgerStore(NpgsqlDataSource dataSource)
{
    public const long MaxAmount = 1_000_000_000_000;

    public async Task OpenAsync(NpgsqlTransaction transaction, Guid account, string tenant, string currency, long openingBalance, Guid operationId,
        DateTime now, CancellationToken cancellationToken)
    {
        const string Sql = """
            INSERT INTO accounts (id, tenant, currency, balance, created_at) VALUES (@account, @tenant, @currency, @openingBalance, @now);
            INSERT INTO ledger_entries (operation_id, account_id, amount, created_at)
            SELECT @operationId, @account, @openingBalance, @now WHERE @openingBalance > 0;
            """;
        await transaction.Connection!.ExecuteAsync(new CommandDefinition(Sql, new { account, tenant, currency, openingBalance, operationId, now },
            transaction, cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>
    /// Locks the <paramref name="tenant"/>'s accounts among <paramref name="ids"/> (in id order) for the rest of the
    /// transaction and returns them: another tenant's account is not there.
    /// </summary>
    public async Task<IReadOnlyDictionary<Guid, AccountRow>> LockAsync(NpgsqlTransaction transaction, Guid[] ids, string tenant,
        CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT id, currency, balance, created_at AS CreatedAt FROM accounts
            WHERE id = ANY(@ids) AND tenant = @tenant
            ORDER BY id FOR UPDATE
            """;
        var rows = await transaction.Connection!.QueryAsync<AccountRow>(new CommandDefinition(Sql, new { ids, tenant }, transaction,
            cancellationToken: cancellationToken)).ConfigureAwait(false);
        return rows.ToDictionary(row => row.Id);
    }

    public async Task BookTransferAsync(NpgsqlTransaction transaction, Guid operationId, Guid from, Guid to, long amount, DateTime now,
        CancellationToken cancellationToken)
    {
        const string Sql = """
            UPDATE accounts SET balance = balance - @amount WHERE id = @from;
            UPDATE accounts SET balance = balance + @amount WHERE id = @to;
            INSERT INTO ledger_entries (operation_id, account_id, amount, created_at)
            VALUES (@operationId, @from, -@amount, @now), (@operationId, @to, @amount, @now);
            """;
        await transaction.Connection!.ExecuteAsync(new CommandDefinition(Sql, new { operationId, from, to, amount, now }, transaction,
            cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>The account, if it belongs to <paramref name="tenant"/> (null: to anyone, for operators).</summary>
    public async Task<AccountRow?> FindAsync(Guid id, string? tenant, CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT id, currency, balance, created_at AS CreatedAt FROM accounts
            WHERE id = @id AND (@tenant::text IS NULL OR tenant = @tenant)
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.QuerySingleOrDefaultAsync<AccountRow>(new CommandDefinition(Sql, new { id, tenant }, cancellationToken: cancellationToken))
            .ConfigureAwait(false);
    }
}

public sealed class AccountRow
{
    public Guid Id { get; init; }
    public string Currency { get; init; } = "";
    public long Balance { get; init; }
    public DateTime CreatedAt { get; init; }
}
