using Dapper;
using Npgsql;
using PollingApi.Operations;

namespace PollingApi.Ledger;

/// <summary>
/// The ledger's invariants: each account's balance is the sum of its entries; each succeeded transfer has
/// exactly one debit and one credit that cancel out; no other operation's transfer left entries.
/// Entries of operations purged by retention are not questioned (their operation is gone, not wrong).
/// </summary>
public sealed class LedgerConsistencyCheck(NpgsqlDataSource dataSource) : IConsistencyCheck
{
    public async Task<IReadOnlyList<ConsistencyFinding>> RunAsync(CancellationToken cancellationToken)
    {
        const string BalanceMismatch = """
            SELECT a.id FROM accounts a
            LEFT JOIN (SELECT account_id, sum(amount) AS total FROM ledger_entries GROUP BY account_id) e ON e.account_id = a.id
            WHERE a.balance <> coalesce(e.total, 0)
            LIMIT 100
            """;
        const string UnbalancedTransfers = """
            SELECT e.operation_id FROM ledger_entries e JOIN operations o ON o.id = e.operation_id
            WHERE o.kind = 'transfers.create'
            GROUP BY e.operation_id
            HAVING sum(e.amount) <> 0 OR count(*) <> 2 OR count(*) FILTER (WHERE e.amount < 0) <> 1
            LIMIT 100
            """;
        const string TransfersWithoutEntries = """
            SELECT o.id FROM operations o
            WHERE o.kind = 'transfers.create' AND o.status = 'succeeded'
              AND NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.operation_id = o.id)
            LIMIT 100
            """;
        const string EntriesWithoutSuccess = """
            SELECT DISTINCT e.operation_id FROM ledger_entries e JOIN operations o ON o.id = e.operation_id
            WHERE o.status <> 'succeeded'
            LIMIT 100
            """;

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var findings = new List<ConsistencyFinding>();

        async Task FindAsync(string sql, string check, string description, string action)
        {
            var ids = (await connection.QueryAsync<Guid>(new CommandDefinition(sql, cancellationToken: cancellationToken)).ConfigureAwait(false)).AsList();
            if (ids.Count > 0)
            {
                findings.Add(new ConsistencyFinding(check, string.Format(System.Globalization.CultureInfo.InvariantCulture, description, ids.Count), ids, action));
            }
        }

        await FindAsync(BalanceMismatch, "ledger-balance-mismatch",
            "{0} accounts have a balance that is not the sum of their ledger entries.",
            "Stop transfers on these accounts and reconcile the balance with ledger_entries; the entries are the record.").ConfigureAwait(false);
        await FindAsync(UnbalancedTransfers, "ledger-unbalanced-transfer",
            "{0} transfers do not have exactly one debit and one credit that cancel out.",
            "Inspect the entries of these transfer operations and book a correcting transfer.").ConfigureAwait(false);
        await FindAsync(TransfersWithoutEntries, "transfer-without-entries",
            "{0} succeeded transfers have no ledger entries.",
            "The money did not move: book the transfer again or mark the operation as failed by hand.").ConfigureAwait(false);
        await FindAsync(EntriesWithoutSuccess, "entries-without-success",
            "{0} operations that did not succeed have ledger entries.",
            "The money moved although the operation reports otherwise: reverse the entries with a correcting transfer.").ConfigureAwait(false);
        return findings;
    }
}
