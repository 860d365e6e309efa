using PollingApi.FaultTests.Infrastructure;

namespace PollingApi.FaultTests.Scenarios;

/// <summary>The <c>accounts</c> and <c>ledger_entries</c> tables as they are after the run, read in one snapshot.</summary>
internal sealed class LedgerSnapshot
{
    private static readonly IReadOnlyList<LedgerEntry> NoEntries = [];

    private LedgerSnapshot(Dictionary<Guid, StoredAccount> accounts, Dictionary<Guid, List<LedgerEntry>> entries)
    {
        Accounts = accounts;
        EntriesByOperation = entries;
    }

    public IReadOnlyDictionary<Guid, StoredAccount> Accounts { get; }

    public IReadOnlyDictionary<Guid, List<LedgerEntry>> EntriesByOperation { get; }

    public IReadOnlyList<LedgerEntry> EntriesOf(Guid operationId) =>
        EntriesByOperation.TryGetValue(operationId, out var entries) ? entries : NoEntries;

    public static async Task<LedgerSnapshot> ReadAsync(ScenarioDatabase database, CancellationToken cancellationToken)
    {
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken);
        // One repeatable-read transaction: balances and entries are compared as of the same moment.
        await using var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken);

        var accounts = new Dictionary<Guid, StoredAccount>();
        await using (var command = new Npgsql.NpgsqlCommand("SELECT id, currency, balance FROM accounts", connection, transaction))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var account = new StoredAccount(reader.GetGuid(0), reader.GetString(1), reader.GetInt64(2));
                accounts[account.Id] = account;
            }
        }

        var entries = new Dictionary<Guid, List<LedgerEntry>>();
        await using (var command = new Npgsql.NpgsqlCommand("SELECT operation_id, account_id, amount FROM ledger_entries", connection, transaction))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var entry = new LedgerEntry(reader.GetGuid(0), reader.GetGuid(1), reader.GetInt64(2));
                if (!entries.TryGetValue(entry.OperationId, out var list))
                {
                    entries[entry.OperationId] = list = [];
                }

                list.Add(entry);
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return new LedgerSnapshot(accounts, entries);
    }
}

internal sealed record StoredAccount(Guid Id, string Currency, long Balance);

internal sealed record LedgerEntry(Guid OperationId, Guid AccountId, long Amount);
