using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Npgsql;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>GET /v1/operations/{id}/attempts: why an operation is (still) where it is.</summary>
public sealed class AttemptHistoryTests(PollingApiFactory factory) : IClassFixture<PollingApiFactory>
{
    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task ASucceededOperationHasOneSucceededAttemptAndLinksToIt()
    {
        var done = await WaitAsync("""{"durationMs": 1}""");
        var id = done.Json.GetProperty("id").GetGuid();

        var attempts = await AttemptsAsync(id);

        var attempt = Assert.Single(attempts);
        Assert.Equal(1, attempt.GetProperty("attempt").GetInt32());
        Assert.Equal("succeeded", attempt.GetProperty("outcome").GetString());
        Assert.Equal(JsonValueKind.Null, attempt.GetProperty("error").ValueKind);
        Assert.False(string.IsNullOrEmpty(attempt.GetProperty("node").GetString()));
        Assert.True(attempt.GetProperty("startedAt").GetDateTime() <= attempt.GetProperty("endedAt").GetDateTime());
        Assert.Equal(DateTimeKind.Utc, attempt.GetProperty("endedAt").GetDateTime().Kind);
        Assert.EndsWith($"/v1/operations/{id}/attempts", done.Json.GetProperty("links").GetProperty("attempts").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TransientFailuresThenASuccessAreEachAnAttemptWithASafeProblem()
    {
        var done = await WaitAsync("""{"durationMs": 1, "failTimes": 2}""");
        var id = done.Json.GetProperty("id").GetGuid();

        var attempts = await AttemptsAsync(id);

        Assert.Equal([1, 2, 3], attempts.Select(a => a.GetProperty("attempt").GetInt32()));
        Assert.Equal(["transient_failure", "transient_failure", "succeeded"], attempts.Select(a => a.GetProperty("outcome").GetString()));
        Assert.All(attempts.Take(2), a => Assert.Equal("urn:pollingapi:problem:attempt-failed", a.GetProperty("error").GetProperty("type").GetString()));
        ProblemAssert.NoExceptionText(JsonSerializer.Serialize(attempts));
    }

    [Fact]
    public async Task APermanentFailureIsOneAttemptWithTheHandlersProblem()
    {
        var done = await WaitAsync("""{"durationMs": 1, "failPermanently": true}""");

        var attempt = Assert.Single(await AttemptsAsync(done.Json.GetProperty("id").GetGuid()));

        Assert.Equal("permanent_failure", attempt.GetProperty("outcome").GetString());
        Assert.Equal("urn:pollingapi:problem:diagnostics-permanent-failure", attempt.GetProperty("error").GetProperty("type").GetString());
    }

    [Fact]
    public async Task ARunningAttemptShowsAsRunningAndACancelledOneAsCancelled()
    {
        var submitted = await _client.SubmitSleepAsync("""{"durationMs": 60000}""");
        var id = submitted.Json.GetProperty("id").GetGuid();
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(id) == "running", TimeSpan.FromSeconds(10));

        var running = Assert.Single(await AttemptsAsync(id));
        await _client.SendAsync(HttpMethod.Post, $"/v1/operations/{id}/cancel", null);
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(id) == "cancelled", TimeSpan.FromSeconds(10));
        var cancelled = Assert.Single(await AttemptsAsync(id));

        Assert.Equal("running", running.GetProperty("outcome").GetString());
        Assert.Equal(JsonValueKind.Null, running.GetProperty("endedAt").ValueKind);
        Assert.Equal("cancelled", cancelled.GetProperty("outcome").GetString());
        Assert.Equal("urn:pollingapi:problem:operation-cancelled", cancelled.GetProperty("error").GetProperty("type").GetString());
    }

    [Fact]
    public async Task AnAttemptWhoseWorkerDiedIsLeaseLostAndTheNextOneRunsInTheSameTrace()
    {
        var traceId = ActivityTraceId.CreateRandom();
        var id = Guid.CreateVersion7();
        await using (var connection = new NpgsqlConnection(factory.DatabaseConnectionString))
        {
            await connection.OpenAsync();
            // Claimed by a node that is gone: its lease ran out a minute ago.
            await using var insert = new NpgsqlCommand("""
                INSERT INTO operations (id, owner, kind, status, payload, attempts, max_attempts, next_attempt_at, locked_by,
                                        locked_until, started_at, trace_parent, created_at, updated_at)
                VALUES (@id, 'dev', 'diagnostics.sleep', 'running', '{"durationMs": 1}', 1, 5, now(), 'gone-node',
                        now() - interval '1 minute', now() - interval '2 minutes', @traceParent, now(), now())
                """, connection);
            insert.Parameters.AddWithValue("id", id);
            insert.Parameters.AddWithValue("traceParent", $"00-{traceId}-{ActivitySpanId.CreateRandom()}-01");
            await insert.ExecuteNonQueryAsync();
        }

        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(id) == "succeeded", TimeSpan.FromSeconds(20));
        var attempts = await AttemptsAsync(id);

        Assert.Equal(["lease_lost", "succeeded"], attempts.Select(a => a.GetProperty("outcome").GetString()));
        Assert.Equal("gone-node", attempts[0].GetProperty("node").GetString());
        Assert.Equal("urn:pollingapi:problem:lease-expired", attempts[0].GetProperty("error").GetProperty("type").GetString());
        Assert.NotEqual("gone-node", attempts[1].GetProperty("node").GetString());
        Assert.All(attempts, a => Assert.Equal(traceId.ToString(), a.GetProperty("traceId").GetString()));
    }

    [Fact]
    public async Task AnUnknownOperationHasNoAttempts()
    {
        string path = $"/v1/operations/{Guid.CreateVersion7()}/attempts";

        var response = await _client.FetchAsync(path);

        ProblemAssert.IsProblem(response, HttpStatusCode.NotFound, "urn:pollingapi:problem:operation-not-found", path);
    }

    private async Task<List<JsonElement>> AttemptsAsync(Guid id)
    {
        var response = await _client.FetchAsync($"/v1/operations/{id}/attempts");
        Assert.True(response.Status == HttpStatusCode.OK, response.ToString());
        return [.. response.Json.GetProperty("items").EnumerateArray()];
    }

    private async Task<ApiResponse> WaitAsync(string json)
    {
        var response = await _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody(json),
            request => request.Headers.TryAddWithoutValidation("Prefer", "wait=30"));
        Assert.True(response.Status == HttpStatusCode.OK, $"Expected the operation to finish within the wait: {response}");
        return response;
    }
}

/// <summary>GET /v1/admin/stats on a node that runs no worker, so what is submitted stays pending.</summary>
public sealed class AdminStatsTests(ApiOnlyPollingApiFactory factory) : IClassFixture<ApiOnlyPollingApiFactory>
{
    [Fact]
    public async Task TheStatsShowEachKindsQueueAndWhatFinishedInTheWindow()
    {
        var admin = factory.CreateClient(await factory.CreateApiKeyAsync("operators", "admin"));
        var client = factory.CreateClient();
        await client.SubmitSleepAsync("""{"durationMs": 1}""");
        await client.SubmitSleepAsync("""{"durationMs": 1}""");
        await using (var connection = new NpgsqlConnection(factory.DatabaseConnectionString))
        {
            await connection.OpenAsync();
            await using var finished = new NpgsqlCommand("""
                INSERT INTO operations (id, owner, kind, status, payload, result, attempts, max_attempts, next_attempt_at, started_at,
                                        completed_at, created_at, updated_at)
                VALUES (gen_random_uuid(), 'dev', 'diagnostics.sleep', 'succeeded', '{}', '{}', 1, 5, now(), now() - interval '2 seconds',
                        now(), now(), now()),
                       (gen_random_uuid(), 'dev', 'diagnostics.sleep', 'failed', '{}', NULL, 1, 5, now(), now(), now(), now(), now())
                """, connection);
            await finished.ExecuteNonQueryAsync();
        }

        var response = await admin.FetchAsync("/v1/admin/stats");
        var forbidden = await client.FetchAsync("/v1/admin/stats");

        Assert.Equal(HttpStatusCode.OK, response.Status);
        Assert.Equal(300, response.Json.GetProperty("windowSeconds").GetInt32());
        var kinds = response.Json.GetProperty("kinds").EnumerateArray().ToDictionary(k => k.GetProperty("kind").GetString()!);
        var sleep = kinds["diagnostics.sleep"];
        Assert.True(sleep.GetProperty("pending").GetInt64() >= 2);
        Assert.Equal(0, sleep.GetProperty("running").GetInt64());
        Assert.Equal(1, sleep.GetProperty("succeeded").GetInt64());
        Assert.Equal(1, sleep.GetProperty("failed").GetInt64());
        Assert.InRange(sleep.GetProperty("runTimeP50Seconds").GetDouble(), 1.9, 2.1);
        Assert.True(sleep.GetProperty("oldestPendingAgeSeconds").GetDouble() >= 0);
        Assert.Equal(0, kinds["accounts.open"].GetProperty("pending").GetInt64());
        Assert.Equal(JsonValueKind.Null, kinds["accounts.open"].GetProperty("runTimeP50Seconds").ValueKind);
        ProblemAssert.IsProblem(forbidden, HttpStatusCode.Forbidden, "urn:pollingapi:problem:forbidden", "/v1/admin/stats");
    }
}
