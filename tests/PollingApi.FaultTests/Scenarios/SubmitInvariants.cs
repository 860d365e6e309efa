using System.Text.Json.Nodes;
using PollingApi.FaultTests.Infrastructure;

namespace PollingApi.FaultTests.Scenarios;

/// <summary>
/// What must hold between a <see cref="SpreadLoad"/>'s submits, as their clients saw them, and the rows in the database:
/// one operation per Idempotency-Key, and the one its answer named; no row but those a 2xx or a
/// <c>commit-outcome-unknown</c> named, or one a keyless submit left without an answer may have stored (matched to it by
/// its payload); and every attempt counted within <c>max_attempts</c> and ended exactly once. Returns the operations the
/// crash scenario's invariants (<see cref="CrashInvariants"/>) then check: outcomes, leases, the ledger.
/// </summary>
internal sealed class SubmitInvariants(ScenarioReport report, ScenarioDatabase database, ApiClient client)
{
    public async Task<IReadOnlyList<AcceptedOperation>> CheckAsync(IReadOnlyCollection<SubmitRecord> records, IReadOnlyList<AcceptedOperation> openings,
        IReadOnlyList<OpenedAccount> accounts, CancellationToken cancellationToken)
    {
        var rows = await StoredSubmit.ReadAllAsync(database, cancellationToken);
        var byId = rows.ToDictionary(r => r.Id);
        var operations = new List<AcceptedOperation>(openings);
        var accounted = openings.Select(o => o.Id).ToHashSet();

        foreach (var group in rows.Where(r => r.IdempotencyKey is not null).GroupBy(r => r.IdempotencyKey, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            report.Violation("one-operation-per-key", $"key {group.Key} has {group.Count()} operations: {string.Join(", ", group.Select(r => r.Id))}");
        }

        var byKey = rows.Where(r => r.IdempotencyKey is not null).GroupBy(r => r.IdempotencyKey!, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var unansweredKeyed = new UnansweredCount();
        foreach (var record in records)
        {
            if (record.AcceptedId is { } id)
            {
                operations.Add(new AcceptedOperation(id, record.Command));
                accounted.Add(id);
            }
            else if (!record.RejectedAsExpected && (record.IdempotencyKey is not null || (record.OutcomeUnknown.Count == 0 && record.Unanswered == 0)))
            {
                // A keyless submit that stopped at an unknown outcome or a missing answer did what a careful client does.
                report.Violation("submit-accepted",
                    $"POST /{record.Command.Route} {record.Command.Json} (key {record.IdempotencyKey ?? "none"}) after {record.Tries} tries: {record.Final?.Describe()}");
            }

            if (record.IdempotencyKey is { } key)
            {
                var stored = byKey.GetValueOrDefault(key);
                if (record.AcceptedId is { } answered)
                {
                    report.Require(stored?.Id == answered, "key-leads-to-the-answered-operation",
                        () => $"key {key} was answered with {answered}, but its stored operation is {stored?.Id.ToString() ?? "none"}");
                }
                else if (stored is not null)
                {
                    // Stored by a try that was not answered, although no retry was accepted: still an operation to check.
                    operations.Add(new AcceptedOperation(stored.Id, record.Command));
                    accounted.Add(stored.Id);
                }

                if (record.Unanswered > 0)
                {
                    unansweredKeyed.Add(record, stored);
                }
                else if (record.AcceptedAnswer is { Replayed: true } && record.OutcomeUnknown.Count == 0)
                {
                    // Every earlier try was a plain 503 or was never sent, yet one of them had stored the operation.
                    report.Violation("stored-only-when-answered",
                        $"key {key}: {record.Unavailable} plain 503s and {record.NotConnected} unsent tries came before a replay of {record.AcceptedId}");
                }
            }

            foreach (var unknown in record.OutcomeUnknown.Where(byId.ContainsKey))
            {
                operations.Add(new AcceptedOperation(unknown, record.Command));
                accounted.Add(unknown);
            }
        }

        var storedWithoutAnswer = MatchKeylessWithoutAnswer(rows, records, accounted, accounts);
        operations.AddRange(storedWithoutAnswer);
        foreach (var row in rows.Where(r => !accounted.Contains(r.Id) && storedWithoutAnswer.All(s => s.Id != r.Id)))
        {
            report.Violation("stored-only-when-answered",
                $"{row.Kind} {row.Id} (key {row.IdempotencyKey ?? "none"}, payload {row.Payload}) is stored, but no answer named it " +
                "and no keyless submit of that payload was left without an answer");
        }

        CheckAttempts(rows);
        await CheckOutcomeUnknownLocationsAsync(records, byId, cancellationToken);

        var keyless = records.Where(r => r.IdempotencyKey is null).ToList();
        report.Summary["submits"] = new JsonObject
        {
            ["keyed"] = records.Count - keyless.Count,
            ["keyless"] = keyless.Count,
            ["tries"] = records.Sum(r => r.Tries),
            ["plain503"] = records.Sum(r => r.Unavailable),
            ["notConnected"] = records.Sum(r => r.NotConnected),
            ["commitOutcomeUnknown"] = records.Sum(r => r.OutcomeUnknown.Count),
            ["claimedAtInsert"] = records.Count(r => r.ClaimedAtInsert),
            ["answered200AlreadyDone"] = records.Count(r => r.AcceptedAnswer is { Status: 200, Replayed: false }),
            ["rejectedAsExpected"] = records.Count(r => r.RejectedAsExpected),
        };
        report.Summary["submitsWithNoAnswer"] = new JsonObject
        {
            ["keyed"] = unansweredKeyed.Submits,
            ["keyedRetryReplayedTheStoredOperation"] = unansweredKeyed.Replayed,
            ["keyedRetryStoredIt"] = unansweredKeyed.StoredByRetry,
            ["keyless"] = keyless.Count(r => r.Unanswered > 0),
            ["keylessFoundStored"] = storedWithoutAnswer.Count,
        };
        return operations;
    }

    /// <summary>
    /// The keyless rows no answer named: each must be the payload of a keyless submit that was sent and left without an
    /// answer (one row per such submit at most). Matched by command, which the payload holds whole.
    /// </summary>
    private static List<AcceptedOperation> MatchKeylessWithoutAnswer(IReadOnlyList<StoredSubmit> rows, IReadOnlyCollection<SubmitRecord> records,
        HashSet<Guid> accounted, IReadOnlyList<OpenedAccount> accounts)
    {
        var knownAccounts = accounts.Select(a => a.AccountId).ToHashSet();
        var candidates = records.Where(r => r.IdempotencyKey is null && r.AcceptedId is null && r.Unanswered > 0)
            .GroupBy(r => r.Command).ToDictionary(g => g.Key, g => g.Count());
        var matched = new List<AcceptedOperation>();
        foreach (var row in rows.Where(r => r.IdempotencyKey is null && !accounted.Contains(r.Id)).OrderBy(r => r.Id))
        {
            var command = row.ToCommand(knownAccounts);
            if (command is not null && candidates.TryGetValue(command, out int left) && left > 0)
            {
                candidates[command] = left - 1;
                matched.Add(new AcceptedOperation(row.Id, command));
            }
        }

        return matched;
    }

    /// <summary>Every counted attempt is within the kind's attempts and ended once: a second outcome for one attempt would be a fence that failed.</summary>
    private void CheckAttempts(IReadOnlyList<StoredSubmit> rows)
    {
        foreach (var row in rows)
        {
            report.Require(row.Attempts <= row.MaxAttempts, "attempts-within-max-attempts",
                () => $"{row.Kind} {row.Id} has {row.Attempts} attempts, more than its {row.MaxAttempts}");
            report.Require(!row.IsTerminal || (row.HistoryEntries == row.Attempts && row.HistoryAttempts == row.Attempts), "one-end-per-attempt",
                () => $"{row.Kind} {row.Id} ended {row.Status} after {row.Attempts} attempts, but its history has {row.HistoryEntries} ends " +
                      $"of {row.HistoryAttempts} distinct attempts");
        }

        report.Summary["attempts"] = rows.Sum(r => (long)r.Attempts);
        report.Summary["rescues"] = rows.Sum(r => (long)r.LeaseLost);
        report.Summary["operationsRescued"] = rows.Count(r => r.LeaseLost > 0);
    }

    /// <summary>After the faults, the Location of each <c>commit-outcome-unknown</c> tells the truth: the operation, or 404.</summary>
    private async Task CheckOutcomeUnknownLocationsAsync(IReadOnlyCollection<SubmitRecord> records, Dictionary<Guid, StoredSubmit> byId,
        CancellationToken cancellationToken)
    {
        int stored = 0;
        int notStored = 0;
        foreach (var id in records.SelectMany(r => r.OutcomeUnknown).Distinct())
        {
            var answer = await client.GetAsync($"v1/operations/{id}", cancellationToken);
            if (byId.ContainsKey(id))
            {
                stored++;
                report.Require(answer.Status is 200 or 202 && answer.OperationId == id, "unknown-outcome-location-tells-the-truth",
                    () => $"{id} is stored, but GET /v1/operations/{id} answered {answer.Describe()}");
            }
            else
            {
                notStored++;
                report.Require(answer.Status == 404 && answer.ProblemType == ProblemTypes.OperationNotFound, "unknown-outcome-location-tells-the-truth",
                    () => $"{id} is not stored, but GET /v1/operations/{id} answered {answer.Describe()}");
            }
        }

        report.Summary["commitOutcomeUnknownOperations"] = new JsonObject { ["foundStored"] = stored, ["foundNotStored"] = notStored };
    }

    private sealed class UnansweredCount
    {
        public int Submits { get; private set; }

        public int Replayed { get; private set; }

        public int StoredByRetry { get; private set; }

        public void Add(SubmitRecord record, StoredSubmit? stored)
        {
            Submits++;
            if (record.AcceptedAnswer is { Replayed: true })
            {
                Replayed++;
            }
            else if (record.AcceptedId is not null && stored is not null)
            {
                StoredByRetry++;
            }
        }
    }
}

/// <summary>An operation row with what the submit invariants need: its key, its payload and its attempts as its history records them.</summary>
internal sealed record StoredSubmit(
    Guid Id,
    string Kind,
    string Status,
    string? IdempotencyKey,
    string Payload,
    int Attempts,
    int MaxAttempts,
    int HistoryEntries,
    int HistoryAttempts,
    int LeaseLost)
{
    public bool IsTerminal => Status is "succeeded" or "failed" or "cancelled";

    public static async Task<List<StoredSubmit>> ReadAllAsync(ScenarioDatabase database, CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT id, kind, status, idempotency_key, payload::text, attempts, max_attempts,
                   (SELECT count(*) FROM jsonb_array_elements(coalesce(attempt_history, '[]')) AS h(e))::int,
                   (SELECT count(DISTINCT e->>'attempt') FROM jsonb_array_elements(coalesce(attempt_history, '[]')) AS h(e))::int,
                   (SELECT count(*) FROM jsonb_array_elements(coalesce(attempt_history, '[]')) AS h(e) WHERE e->>'outcome' = 'lease_lost')::int
            FROM operations
            """;
        var rows = new List<StoredSubmit>();
        await using var command = database.DataSource.CreateCommand(Sql);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(new StoredSubmit(reader.GetGuid(0), reader.GetString(1), reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3),
                reader.GetString(4), reader.GetInt32(5), reader.GetInt32(6), reader.GetInt32(7), reader.GetInt32(8), reader.GetInt32(9)));
        }

        return rows;
    }

    /// <summary>The command whose submit stored this payload; null for a kind the mix does not send.</summary>
    public Command? ToCommand(IReadOnlySet<Guid> knownAccounts)
    {
        var json = JsonNode.Parse(Payload)!.AsObject();
        return Kind switch
        {
            Kinds.Sleep => new SleepCommand((int)json["durationMs"]!, (int?)json["failTimes"] ?? 0, (bool?)json["failPermanently"] ?? false),
            Kinds.Transfer when Guid.TryParse((string?)json["from"], out var from) && Guid.TryParse((string?)json["to"], out var to) =>
                new TransferCommand(from, to, (long)json["amount"]!, ToUnknownAccount: !knownAccounts.Contains(to)),
            _ => null,
        };
    }
}
