using System.Net;
using System.Text.Json;
using Npgsql;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>A node with its own database, which the test corrupts on purpose.</summary>
public sealed class CorruptiblePollingApiFactory : PollingApiFactory
{
    protected override IEnumerable<(string Key, string Value)> Settings =>
    [
        ("Operations:Role", "Api"),
        ("Operations:PendingAlertAge", "00:01:00"),
        ("Operations:LeaseRescueInterval", "01:00:00"),
    ];
}

public sealed class ConsistencyTests(CorruptiblePollingApiFactory factory) : IClassFixture<CorruptiblePollingApiFactory>
{
    [Fact]
    public async Task TheConsistencyCheckReportsEachKindOfHoleWithItsIdsAndAnAction()
    {
        var client = factory.CreateClient(await factory.CreateApiKeyAsync("operators", "admin"));
        var clean = await client.FetchAsync("/v1/admin/consistency");
        Assert.Equal(HttpStatusCode.OK, clean.Status);
        Assert.Empty(clean.Json.GetProperty("findings").EnumerateArray());

        Guid stuckRunning = Guid.CreateVersion7(), stalePending = Guid.CreateVersion7(), account = Guid.CreateVersion7(),
            unbalanced = Guid.CreateVersion7(), withoutEntries = Guid.CreateVersion7(), failedWithEntries = Guid.CreateVersion7();
        await using (var connection = new NpgsqlConnection(factory.DatabaseConnectionString))
        {
            await connection.OpenAsync();
            await using var corrupt = new NpgsqlCommand("""
                INSERT INTO operations (id, owner, kind, status, payload, attempts, max_attempts, next_attempt_at, locked_by, locked_until,
                                        created_at, updated_at, completed_at)
                VALUES (@stuckRunning, 'dev', 'diagnostics.sleep', 'running', '{}', 1, 5, now(), 'gone-node', now() - interval '5 hours',
                        now(), now(), NULL),
                       (@stalePending, 'dev', 'diagnostics.sleep', 'pending', '{}', 0, 5, now() - interval '1 hour', NULL, NULL,
                        now(), now(), NULL),
                       (@unbalanced, 'dev', 'transfers.create', 'succeeded', '{}', 1, 5, now(), NULL, NULL, now(), now(), now()),
                       (@withoutEntries, 'dev', 'transfers.create', 'succeeded', '{}', 1, 5, now(), NULL, NULL, now(), now(), now()),
                       (@failedWithEntries, 'dev', 'transfers.create', 'failed', '{}', 1, 5, now(), NULL, NULL, now(), now(), now());
                INSERT INTO accounts (id, tenant, currency, balance, created_at) VALUES (@account, 'dev', 'EUR', 999, now());
                INSERT INTO ledger_entries (operation_id, account_id, amount, created_at)
                VALUES (@unbalanced, @account, -10, now()), (@failedWithEntries, @account, -5, now()), (@failedWithEntries, @account, 5, now());
                """, connection);
            foreach (var (name, value) in new[] { ("stuckRunning", stuckRunning), ("stalePending", stalePending), ("account", account),
                         ("unbalanced", unbalanced), ("withoutEntries", withoutEntries), ("failedWithEntries", failedWithEntries) })
            {
                corrupt.Parameters.AddWithValue(name, value);
            }

            await corrupt.ExecuteNonQueryAsync();
        }

        var report = await client.FetchAsync("/v1/admin/consistency");

        Assert.Equal(HttpStatusCode.OK, report.Status);
        var findings = report.Json.GetProperty("findings").EnumerateArray()
            .ToDictionary(f => f.GetProperty("check").GetString()!, f => f);
        AssertFinding(findings, "running-past-lease", stuckRunning);
        AssertFinding(findings, "pending-past-age", stalePending);
        AssertFinding(findings, "ledger-balance-mismatch", account);
        AssertFinding(findings, "ledger-unbalanced-transfer", unbalanced);
        AssertFinding(findings, "transfer-without-entries", withoutEntries);
        AssertFinding(findings, "entries-without-success", failedWithEntries);
    }

    private static void AssertFinding(Dictionary<string, JsonElement> findings, string check, Guid id)
    {
        Assert.True(findings.TryGetValue(check, out var finding), $"No '{check}' finding in {string.Join(", ", findings.Keys)}");
        Assert.Contains(id, finding.GetProperty("ids").EnumerateArray().Select(i => i.GetGuid()));
        Assert.False(string.IsNullOrWhiteSpace(finding.GetProperty("description").GetString()));
        Assert.False(string.IsNullOrWhiteSpace(finding.GetProperty("action").GetString()));
    }
}
