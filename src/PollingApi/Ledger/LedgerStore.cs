using Dapper;
using Npgsql;

namespace PollingApi.Ledger;

/// <summary>Every statement on <c>accounts</c> and <c>ledger_entries</c>.</summary>
public sealed class LedgerStore(NpgsqlDataSource dataSource)
{
    public const long MaxAmount = 1_000_000_000_000;

    public async Task OpenAsync(NpgsqlTransaction transaction, Guid account, string currency, long openingBalance, Guid operationId,
        DateTime now, CancellationToken cancellationToken)
    {
        const string Sql = """
            INSERT INTO accounts (id, currency, balance, created_at) VALUES (@account, @currency, @openingBalance, @now);
            INSERT INTO ledger_entries (operation_id, account_id, amount, created_at)
            SELECT @operationId, @account, @openingBalance, @now WHERE @openingBalance > 0;
            """;
        await transaction.Connection!.ExecuteAsync(new CommandDefinition(Sql, new { account, currency, openingBalance, operationId, now },
            transaction, cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>Locks the accounts (in id order) for the rest of the transaction and returns those that exist.</summary>
    public async Task<IReadOnlyDictionary<Guid, AccountRow>> LockAsync(NpgsqlTransaction transaction, Guid[] ids,
        CancellationToken cancellationToken)
    {
        const string Sql = "SELECT id, currency, balance, created_at AS CreatedAt FROM accounts WHERE id = ANY(@ids) ORDER BY id FOR UPDATE";
        var rows = await transaction.Connection!.QueryAsync<AccountRow>(new CommandDefinition(Sql, new { ids }, transaction,
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

    public async Task<AccountRow?> FindAsync(Guid id, CancellationToken cancellationToken)
    {
        const string Sql = "SELECT id, currency, balance, created_at AS CreatedAt FROM accounts WHERE id = @id";
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.QuerySingleOrDefaultAsync<AccountRow>(new CommandDefinition(Sql, new { id }, cancellationToken: cancellationToken))
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
