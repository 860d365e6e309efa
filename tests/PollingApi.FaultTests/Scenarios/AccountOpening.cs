using System.Collections.Concurrent;
using PollingApi.FaultTests.Infrastructure;

namespace PollingApi.FaultTests.Scenarios;

/// <summary>
/// Opens the accounts that the command mix's transfers move money between, before any fault, and waits until every
/// opening succeeded. Opening balances vary (100 to 9600 EUR cents), so that the poorer accounts run dry and failed
/// transfers are exercised too.
/// </summary>
internal static class AccountOpening
{
    public const int AccountCount = 100;
    private const int MaxSubmitTries = 50;
    private static readonly TimeSpan AccountsDeadline = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Opens <see cref="AccountCount"/> accounts through <paramref name="client"/>, keyed <c>&lt;keyPrefix&gt;-account-&lt;n&gt;</c>.
    /// Returns the accounts, in a repeatable order, and the openings (operations the invariants check like any other);
    /// none when the build has no ledger.
    /// </summary>
    public static async Task<(IReadOnlyList<OpenedAccount> Accounts, IReadOnlyList<AcceptedOperation> Openings)> OpenAsync(ApiClient client,
        ScenarioDatabase database, ScenarioReport report, string keyPrefix, int clients, CancellationToken cancellationToken)
    {
        Console.WriteLine($"  opening {AccountCount} accounts");
        var openings = new ConcurrentBag<AcceptedOperation>();
        async Task OpenAsync(int i, CancellationToken ct)
        {
            var command = new OpenAccountCommand(100 + (500 * (i % 20)));
            var outcome = await client.SubmitAsync(command.Route, command.Json, $"{keyPrefix}-account-{i}", MaxSubmitTries, ct);
            if ((outcome.Final.Status == 202 || (outcome.Final.Status == 200 && outcome.Final.Replayed)) && outcome.Final.OperationId is { } id)
            {
                openings.Add(new AcceptedOperation(id, command));
            }
            else if (i == 0 && outcome.Final.Status == 404)
            {
                report.Violation("ledger-available",
                    "POST /v1/accounts answered 404: this build has no ledger commands (run with --skip-ledger to test sleeps only)");
            }
            else
            {
                report.Violation("submit-accepted", $"POST /{command.Route} {command.Json}: {outcome.Final.Describe()}");
            }
        }

        // The first one alone: a build without the ledger is told apart from a failing one.
        await OpenAsync(0, cancellationToken);
        if (openings.IsEmpty)
        {
            return ([], []);
        }

        await Parallel.ForEachAsync(Enumerable.Range(1, AccountCount - 1),
            new ParallelOptions { MaxDegreeOfParallelism = clients, CancellationToken = cancellationToken },
            async (i, ct) => await OpenAsync(i, ct));

        var ids = openings.Select(o => o.Id).ToHashSet();
        bool done = await Waiting.UntilAsync(async () =>
        {
            var rows = await database.ReadOperationsAsync(cancellationToken);
            return ids.All(id => rows.TryGetValue(id, out var row) && row.IsTerminal);
        }, AccountsDeadline, TimeSpan.FromMilliseconds(250), cancellationToken);
        if (!done)
        {
            report.Violation("accounts-opened", $"not every account opening was terminal within {AccountsDeadline.TotalSeconds:0} s");
        }

        var stored = await database.ReadOperationsAsync(cancellationToken);
        var accounts = new List<OpenedAccount>();
        foreach (var opening in openings)
        {
            var command = (OpenAccountCommand)opening.Command;
            if (stored.TryGetValue(opening.Id, out var row) && row.Status == "succeeded"
                && CrashInvariants.ReadGuid(row.ResultJson, "accountId") is { } accountId)
            {
                accounts.Add(new OpenedAccount(accountId, command.OpeningBalance, opening.Id));
            }
            else
            {
                report.Violation("accounts-opened", $"opening {opening.Id} ended {row?.Status ?? "missing"} ({row?.ErrorType}) with {row?.ResultJson}");
            }
        }

        return ([.. accounts.OrderBy(a => a.OperationId)], [.. openings]);
    }
}
