using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PollingApi.Tests.Infrastructure;
using PollingApi.Operations.Worker;
using PollingApi.Operations.Lifecycle;

namespace PollingApi.Tests;

/// <summary>Cancelling running work, Retry-After from run-time statistics, and retention, on a node that runs the worker.</summary>
public sealed class RunningOperationTests(PollingApiFactory factory) : IClassFixture<PollingApiFactory>
{
    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task CancellingARunningOperationFiresItsHandlersTokenAndEndsItCancelled()
    {
        var submitted = await _client.SubmitSleepAsync("""{"durationMs": 60000}""");
        var id = submitted.Json.GetProperty("id").GetGuid();
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(id) == "running", TimeSpan.FromSeconds(20));
        var clock = Stopwatch.StartNew();

        var response = await _client.SendAsync(HttpMethod.Post, $"/v1/operations/{id}/cancel", null);

        Assert.Equal(HttpStatusCode.Accepted, response.Status);
        Assert.Equal("running", response.Json.GetProperty("status").GetString());
        Assert.True(response.Json.GetProperty("cancelRequested").GetBoolean());
        Assert.True(RetryAfter.Seconds(response) >= 1);

        var done = await _client.FetchAsync($"/v1/operations/{id}?wait=30");
        Assert.Equal(HttpStatusCode.OK, done.Status);
        Assert.Equal("cancelled", done.Json.GetProperty("status").GetString());
        Assert.Equal("urn:pollingapi:problem:operation-cancelled", done.Json.GetProperty("error").GetProperty("type").GetString());
        // The 60 s sleep stopped when its token fired, not when it ran out.
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"cancelled after {clock.Elapsed}");
        var row = await factory.Operations.GetAsync(id);
        Assert.Equal("cancelled", row.Status);
        Assert.Null(row.LockedBy);
        Assert.Equal(1, row.Attempts);
    }

    [Fact]
    public async Task RetryAfterFollowsTheKindsRecentRunTime()
    {
        // Recent history: sleeps took 12 s each.
        await using (var connection = new NpgsqlConnection(factory.DatabaseConnectionString))
        {
            await connection.OpenAsync();
            await using var history = new NpgsqlCommand("""
                INSERT INTO operations (id, owner, kind, status, payload, attempts, max_attempts, next_attempt_at,
                                        created_at, updated_at, started_at, completed_at, result)
                SELECT gen_random_uuid(), 'dev', 'diagnostics.sleep', 'succeeded', '{}', 1, 5, now(),
                       now() - interval '13 seconds', now(), now() - interval '12 seconds', now(), '{}'
                FROM generate_series(1, 20)
                """, connection);
            await history.ExecuteNonQueryAsync();
        }

        await ActivatorUtilities.CreateInstance<StatisticsRefreshJob>(factory.Services).RefreshAsync(CancellationToken.None);
        var submitted = await _client.SubmitSleepAsync("""{"durationMs": 60000}""");
        var id = submitted.Json.GetProperty("id").GetGuid();
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(id) == "running", TimeSpan.FromSeconds(20));

        var polled = await _client.FetchAsync($"/v1/operations/{id}");

        Assert.Equal(HttpStatusCode.Accepted, polled.Status);
        // About 12 s of a typical run remain (less whatever has passed since it started).
        Assert.InRange(RetryAfter.Seconds(polled), 8, 12);
        await _client.SendAsync(HttpMethod.Post, $"/v1/operations/{id}/cancel", null);
    }

    [Fact]
    public async Task APurgedOperationAnswers410AndANeverSeenOneAnswers404()
    {
        var now = TimeProvider.System.GetUtcNow();
        var old = Guid.CreateVersion7(now.AddDays(-10));
        var recent = Guid.CreateVersion7(now.AddDays(-1));
        await using (var connection = new NpgsqlConnection(factory.DatabaseConnectionString))
        {
            await connection.OpenAsync();
            await using var insert = new NpgsqlCommand("""
                INSERT INTO operations (id, owner, kind, status, payload, attempts, max_attempts, next_attempt_at,
                                        created_at, updated_at, completed_at, result)
                VALUES (@old, 'dev', 'diagnostics.sleep', 'succeeded', '{}', 1, 5, now(),
                        now() - interval '10 days', now() - interval '9 days', now() - interval '9 days', '{}'),
                       (@recent, 'dev', 'diagnostics.sleep', 'succeeded', '{}', 1, 5, now(),
                        now() - interval '1 day', now() - interval '1 day', now() - interval '1 day', '{}')
                """, connection);
            insert.Parameters.AddWithValue("old", old);
            insert.Parameters.AddWithValue("recent", recent);
            await insert.ExecuteNonQueryAsync();
        }

        Assert.Equal(HttpStatusCode.OK, (await _client.FetchAsync($"/v1/operations/{old}")).Status);

        int purged = await ActivatorUtilities.CreateInstance<RetentionPurgeJob>(factory.Services).PurgeAsync(CancellationToken.None);

        Assert.True(purged >= 1);
        Assert.Null(await factory.Operations.FindAsync(old));
        Assert.NotNull(await factory.Operations.FindAsync(recent));
        var gone = await _client.FetchAsync($"/v1/operations/{old}");
        var problem = ProblemAssert.IsProblem(gone, HttpStatusCode.Gone, "urn:pollingapi:problem:operation-expired", $"/v1/operations/{old}");
        Assert.Contains("7 days", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await _client.FetchAsync($"/v1/operations/{recent}")).Status);
        var neverSeen = await _client.FetchAsync($"/v1/operations/{Guid.CreateVersion7(now.AddDays(-1))}");
        Assert.Equal(HttpStatusCode.NotFound, neverSeen.Status);
    }
}

/// <summary>A node behind a reverse proxy that it believes.</summary>
public sealed class ProxiedHeadersPollingApiFactory : PollingApiFactory
{
    protected override IEnumerable<(string Key, string Value)> Settings =>
    [
        ("Operations:Role", "Api"),
        ("ForwardedHeaders:Enabled", "true"),
        // The in-memory test server has no remote address; a real deployment lists its proxies.
        ("ForwardedHeaders:KnownNetworks:0", "0.0.0.0/0"),
        ("ForwardedHeaders:KnownNetworks:1", "::/0"),
    ];
}

public sealed class ForwardedHeadersTests(ProxiedHeadersPollingApiFactory factory) : IClassFixture<ProxiedHeadersPollingApiFactory>
{
    [Fact]
    public async Task BehindAProxyLinksUseTheExternalSchemeHostAndPathPrefix()
    {
        var client = factory.CreateClient();
        var response = await client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody("""{"durationMs": 1}"""),
            request =>
            {
                request.Headers.TryAddWithoutValidation("X-Forwarded-Proto", "https");
                request.Headers.TryAddWithoutValidation("X-Forwarded-Host", "api.example.test");
                request.Headers.TryAddWithoutValidation("X-Forwarded-Prefix", "/polling");
                request.Headers.TryAddWithoutValidation("X-Forwarded-For", "203.0.113.7");
            });

        Assert.Equal(HttpStatusCode.Accepted, response.Status);
        string id = response.Json.GetProperty("id").GetString()!;
        string expected = $"https://api.example.test/polling/v1/operations/{id}";
        Assert.Equal(expected, response.Header("Location"));
        Assert.Equal(expected, response.Header("Operation-Location"));
        Assert.Equal(expected, response.Json.GetProperty("links").GetProperty("self").GetString());
        Assert.Equal(expected + "/cancel", response.Json.GetProperty("links").GetProperty("cancel").GetString());
    }

    [Fact]
    public async Task WithoutForwardedHeadersLinksUseTheRequestItself()
    {
        var response = await factory.CreateClient().SubmitSleepAsync("""{"durationMs": 1}""");
        Assert.StartsWith("http://localhost/v1/operations/", response.Header("Location"), StringComparison.Ordinal);
    }
}
