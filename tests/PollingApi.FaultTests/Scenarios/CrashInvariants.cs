using System.Text.Json;
using System.Text.Json.Nodes;
using PollingApi.FaultTests.Infrastructure;

namespace PollingApi.FaultTests.Scenarios;

/// <summary>
/// What must hold once every operation of the crash scenario is terminal, read from the database itself:
/// nothing lost, every outcome as its command says, no lease left behind, and a ledger whose entries and
/// balances agree with exactly the money operations that succeeded.
/// </summary>
internal sealed class CrashInvariants(ScenarioReport report, ScenarioDatabase database, ApiClient client, bool ledger, int seed)
{
    private const int ApiSampleSize = 200;
    private const int AccountSampleSize = 20;

    private readonly Dictionary<string, int> _failedAfterCrashes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _extraExecutions = new(StringComparer.Ordinal);
    private long _expectedTransientRetries;

    public async Task CheckAsync(IReadOnlyList<AcceptedOperation> acceptedList, IReadOnlyList<OpenedAccount> accounts,
        CancellationToken cancellationToken)
    {
        var rows = await database.ReadOperationsAsync(cancellationToken);
        var accepted = acceptedList.GroupBy(a => a.Id).Select(g => g.First()).ToList();
        report.Summary["accepted"] = CountBy(accepted, a => a.Command.Kind);

        var present = new List<(AcceptedOperation Operation, StoredOperation Row)>();
        foreach (var operation in accepted)
        {
            if (!rows.TryGetValue(operation.Id, out var row))
            {
                report.Violation("no-accepted-operation-lost", $"{operation.Command.Kind} {operation.Id} was answered 202 but is not in the database");
                continue;
            }

            report.Require(row.IsTerminal, "every-operation-terminal", () => $"{row.Kind} {row.Id} is still {row.Status} (attempt {row.Attempts})");
            present.Add((operation, row));
        }

        report.Summary["terminal"] = CountBy(present, p => p.Row.IsTerminal ? p.Row.Status : "notTerminal");
        report.Summary["outcomes"] = new JsonObject(present.GroupBy(p => p.Row.Kind, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => KeyValuePair.Create(g.Key, (JsonNode?)CountBy(g, p => Outcome(p.Row)))));
        report.Summary["storedWithoutAcceptedAnswer"] = rows.Count - present.Count;

        foreach (var row in rows.Values.Where(r => r.LockedBy is not null))
        {
            report.Violation("no-lease-left-behind", $"{row.Kind} {row.Id} is {row.Status} and still locked by {row.LockedBy}");
        }

        var snapshot = ledger ? await LedgerSnapshot.ReadAsync(database, cancellationToken) : null;
        foreach (var (operation, row) in present.Where(p => p.Row.IsTerminal))
        {
            switch (operation.Command)
            {
                case SleepCommand sleep:
                    CheckSleep(sleep, row);
                    break;
                case TransferCommand transfer when snapshot is not null:
                    CheckTransfer(transfer, row, snapshot);
                    break;
                case OpenAccountCommand opening when snapshot is not null:
                    CheckOpening(opening, row, snapshot);
                    break;
            }
        }

        report.Summary["failedAfterCrashes"] = ToJson(_failedAfterCrashes);
        report.Summary["extraExecutions"] = ToJson(_extraExecutions);
        report.Summary["expectedTransientRetries"] = _expectedTransientRetries;

        if (snapshot is not null)
        {
            CheckLedger(present, snapshot, accounts);
            await CheckAccountsEndpointAsync(snapshot, cancellationToken);
            await CheckConsistencyEndpointAsync(cancellationToken);
        }

        await CheckApiAgreesAsync(present, cancellationToken);
    }

    private void CheckSleep(SleepCommand sleep, StoredOperation row)
    {
        AddExtraExecutions(row.Kind, row.Attempts - Math.Min(sleep.ExpectedAttempts, row.Attempts));
        if (row.Status == "failed" && IsConsumedByCrashes(row))
        {
            return;
        }

        if (sleep.FailPermanently)
        {
            report.Require(row.Status == "failed" && row.ErrorType == ProblemTypes.DiagnosticsPermanentFailure, "sleep-outcome",
                () => $"sleep {row.Id} with failPermanently ended {Outcome(row)}, not failed with {ProblemTypes.DiagnosticsPermanentFailure}");
            return;
        }

        if (row.Status != "succeeded")
        {
            report.Violation("sleep-outcome", $"sleep {row.Id} (failTimes {sleep.FailTimes}) ended {Outcome(row)} after {row.Attempts} attempts");
            return;
        }

        _expectedTransientRetries += sleep.FailTimes;
        long? sleptMs = ReadLong(row.ResultJson, "sleptMs");
        long? attempt = ReadLong(row.ResultJson, "attempt");
        report.Require(sleptMs == sleep.DurationMs && attempt == row.Attempts && attempt > sleep.FailTimes, "sleep-result",
            () => $"sleep {row.Id} (durationMs {sleep.DurationMs}, failTimes {sleep.FailTimes}) has result {row.ResultJson} " +
                  $"but the row says attempt {row.Attempts}");
    }

    private void CheckTransfer(TransferCommand transfer, StoredOperation row, LedgerSnapshot snapshot)
    {
        AddExtraExecutions(row.Kind, row.Attempts - 1);
        var entries = snapshot.EntriesOf(row.Id);
        if (row.Status == "succeeded")
        {
            report.Require(!transfer.ToUnknownAccount, "transfer-outcome",
                () => $"transfer {row.Id} to the unknown account {transfer.To} succeeded");
            report.Require(ReadGuid(row.ResultJson, "transferId") == row.Id, "transfer-result",
                () => $"transfer {row.Id} has result {row.ResultJson}; its transferId must be the operation id");
            bool exact = entries.Count == 2
                         && entries.Count(e => e.AccountId == transfer.From && e.Amount == -transfer.Amount) == 1
                         && entries.Count(e => e.AccountId == transfer.To && e.Amount == transfer.Amount) == 1;
            report.Require(exact, "succeeded-transfer-has-one-debit-and-one-credit",
                () => $"transfer {row.Id} of {transfer.Amount} from {transfer.From} to {transfer.To} has entries {Describe(entries)}");
            return;
        }

        report.Require(entries.Count == 0, "failed-transfer-has-no-entries",
            () => $"transfer {row.Id} ended {Outcome(row)} but has entries {Describe(entries)}");
        if (row.Status == "failed" && IsConsumedByCrashes(row))
        {
            return;
        }

        string expected = transfer.ToUnknownAccount ? ProblemTypes.UnknownAccount : ProblemTypes.InsufficientFunds;
        report.Require(row.Status == "failed" && row.ErrorType == expected, "transfer-outcome",
            () => $"transfer {row.Id} of {transfer.Amount} from {transfer.From} to {transfer.To} ended {Outcome(row)}; " +
                  $"a failure must be {expected}");
    }

    private void CheckOpening(OpenAccountCommand opening, StoredOperation row, LedgerSnapshot snapshot)
    {
        AddExtraExecutions(row.Kind, row.Attempts - 1);
        var entries = snapshot.EntriesOf(row.Id);
        if (row.Status != "succeeded")
        {
            report.Violation("account-opening-outcome", $"opening {row.Id} ended {Outcome(row)}");
            report.Require(entries.Count == 0, "failed-opening-has-no-entries", () => $"opening {row.Id} has entries {Describe(entries)}");
            return;
        }

        var accountId = ReadGuid(row.ResultJson, "accountId");
        report.Require(accountId is not null && ReadLong(row.ResultJson, "balance") == opening.OpeningBalance
                       && ReadString(row.ResultJson, "currency") == OpenAccountCommand.Currency, "account-opening-result",
            () => $"opening {row.Id} of {opening.OpeningBalance} {OpenAccountCommand.Currency} has result {row.ResultJson}");
        report.Require(accountId is { } id && snapshot.Accounts.TryGetValue(id, out var account) && account.Currency == OpenAccountCommand.Currency,
            "opened-account-exists", () => $"opening {row.Id} names account {accountId}, which is not in the accounts table with currency EUR");
        // An opening balance of 0 moves no money and books no entry.
        bool entriesRight = opening.OpeningBalance == 0
            ? entries.Count == 0
            : entries.Count == 1 && entries[0].AccountId == accountId && entries[0].Amount == opening.OpeningBalance;
        report.Require(entriesRight, "opening-has-one-entry",
            () => $"opening {row.Id} of {opening.OpeningBalance} into {accountId} has entries {Describe(entries)}");
    }

    private void CheckLedger(List<(AcceptedOperation Operation, StoredOperation Row)> present, LedgerSnapshot snapshot,
        IReadOnlyList<OpenedAccount> accounts)
    {
        var moneyOperations = present
            .Where(p => p.Row.Status == "succeeded" && p.Operation.Command is TransferCommand or OpenAccountCommand)
            .Select(p => p.Row.Id)
            .ToHashSet();
        foreach (var (operationId, entries) in snapshot.EntriesByOperation.Where(e => !moneyOperations.Contains(e.Key)))
        {
            report.Violation("every-entry-belongs-to-a-succeeded-operation",
                $"operation {operationId} is not a succeeded opening or transfer of this run but has entries {Describe(entries)}");
        }

        var sums = snapshot.EntriesByOperation.Values.SelectMany(e => e)
            .GroupBy(e => e.AccountId)
            .ToDictionary(g => g.Key, g => g.Sum(e => e.Amount));
        foreach (var account in snapshot.Accounts.Values)
        {
            long sum = sums.GetValueOrDefault(account.Id);
            report.Require(account.Balance == sum, "balance-equals-sum-of-entries",
                () => $"account {account.Id} has balance {account.Balance} but its entries add up to {sum}");
        }

        foreach (var accountId in sums.Keys.Where(id => !snapshot.Accounts.ContainsKey(id)))
        {
            report.Violation("balance-equals-sum-of-entries", $"entries name account {accountId}, which does not exist");
        }

        long openingTotal = present
            .Where(p => p.Row.Status == "succeeded" && p.Operation.Command is OpenAccountCommand)
            .Sum(p => ((OpenAccountCommand)p.Operation.Command).OpeningBalance);
        long balanceTotal = snapshot.Accounts.Values.Sum(a => a.Balance);
        report.Require(balanceTotal == openingTotal, "money-is-conserved",
            () => $"the balances add up to {balanceTotal} but the accounts were opened with {openingTotal}");
        report.Require(snapshot.Accounts.Count == accounts.Count, "every-account-was-opened-by-this-run",
            () => $"the accounts table has {snapshot.Accounts.Count} accounts; this run opened {accounts.Count}");

        report.Summary["ledger"] = new JsonObject
        {
            ["accounts"] = snapshot.Accounts.Count,
            ["entries"] = snapshot.EntriesByOperation.Values.Sum(e => e.Count),
            ["openingTotal"] = openingTotal,
            ["balanceTotal"] = balanceTotal,
        };
    }

    /// <summary>The API reports the same balance as the table for a random sample of accounts.</summary>
    private async Task CheckAccountsEndpointAsync(LedgerSnapshot snapshot, CancellationToken cancellationToken)
    {
        foreach (var account in Sample(snapshot.Accounts.Values, a => a.Id, AccountSampleSize))
        {
            var answer = await client.GetAsync($"v1/accounts/{account.Id}", cancellationToken);
            long? balance = answer.Status == 200 ? ReadLong(answer.Body, "balance") : null;
            report.Require(balance == account.Balance && ReadString(answer.Body, "currency") == account.Currency, "api-agrees-with-database",
                () => $"GET /v1/accounts/{account.Id} answered {answer.Describe()}; the table says {account.Balance} {account.Currency}");
        }
    }

    private async Task CheckConsistencyEndpointAsync(CancellationToken cancellationToken)
    {
        var answer = await client.GetAsync("v1/admin/consistency", cancellationToken);
        if (answer.Status != 200)
        {
            report.Violation("consistency-check-finds-nothing", $"GET /v1/admin/consistency answered {answer.Describe()}");
            return;
        }

        using var json = JsonDocument.Parse(answer.Body);
        if (!json.RootElement.TryGetProperty("findings", out var findings) || findings.ValueKind != JsonValueKind.Array)
        {
            report.Violation("consistency-check-finds-nothing", $"GET /v1/admin/consistency answered without a findings array: {answer.Describe()}");
            return;
        }

        report.Summary["consistencyFindings"] = findings.GetArrayLength();
        foreach (var finding in findings.EnumerateArray())
        {
            report.Violation("consistency-check-finds-nothing", finding.GetRawText());
        }
    }

    /// <summary>The API reports the same terminal status as the table for a random sample.</summary>
    private async Task CheckApiAgreesAsync(List<(AcceptedOperation Operation, StoredOperation Row)> present, CancellationToken cancellationToken)
    {
        var sample = Sample(present.Where(p => p.Row.IsTerminal), p => p.Row.Id, ApiSampleSize);
        foreach (var (operation, row) in sample)
        {
            var answer = await client.GetAsync($"v1/operations/{operation.Id}", cancellationToken);
            string? status = answer.Status == 200 ? ReadString(answer.Body, "status") : null;
            report.Require(status == row.Status, "api-agrees-with-database",
                () => $"GET /v1/operations/{operation.Id} answered {answer.Describe()}; the table says {row.Status}");
        }

        report.Summary["apiSampleChecked"] = sample.Count;
    }

    /// <summary>A random sample that the seed repeats.</summary>
    private List<T> Sample<T>(IEnumerable<T> items, Func<T, Guid> id, int count)
    {
        var all = items.OrderBy(id).ToArray();
        new Random(seed).Shuffle(all);
        return [.. all.Take(count)];
    }

    /// <summary>A crash can use up an operation's attempts: lease rescue then ends it failed with lease-expired.</summary>
    private bool IsConsumedByCrashes(StoredOperation row)
    {
        if (row.ErrorType != ProblemTypes.LeaseExpired || row.Attempts < row.MaxAttempts)
        {
            return false;
        }

        _failedAfterCrashes[row.Kind] = _failedAfterCrashes.GetValueOrDefault(row.Kind) + 1;
        return true;
    }

    private void AddExtraExecutions(string kind, long extra) =>
        _extraExecutions[kind] = _extraExecutions.GetValueOrDefault(kind) + extra;

    private static string Outcome(StoredOperation row) =>
        row.Status == "failed" && row.ErrorType is { } type ? $"failed:{type.Replace("urn:pollingapi:problem:", "", StringComparison.Ordinal)}" : row.Status;

    private static string Describe(IReadOnlyList<LedgerEntry> entries) =>
        entries.Count == 0 ? "(none)" : string.Join(", ", entries.Select(e => $"{e.Amount:+0;-0} on {e.AccountId}"));

    private static JsonObject CountBy<T>(IEnumerable<T> items, Func<T, string> key) =>
        new(items.GroupBy(key, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => KeyValuePair.Create(g.Key, (JsonNode?)g.Count())));

    private static JsonObject ToJson<T>(Dictionary<string, T> values) =>
        new(values.OrderBy(v => v.Key, StringComparer.Ordinal).Select(v => KeyValuePair.Create(v.Key, (JsonNode?)JsonValue.Create(v.Value))));

    public static Guid? ReadGuid(string? json, string property) =>
        ReadString(json, property) is { } text && Guid.TryParse(text, out var id) ? id : null;

    private static string? ReadString(string? json, string property) =>
        Read(json, property, value => value.ValueKind == JsonValueKind.String ? value.GetString() : null);

    private static long? ReadLong(string? json, string property) =>
        Read(json, property, value => value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long n) ? n : (long?)null);

    private static T? Read<T>(string? json, string property, Func<JsonElement, T?> read)
    {
        if (string.IsNullOrEmpty(json))
        {
            return default;
        }

        using var document = JsonDocument.Parse(json);
        return document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty(property, out var value)
            ? read(value)
            : default;
    }
}
