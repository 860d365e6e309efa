using System.Globalization;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Npgsql;
using PollingApi.Operations;
using PollingApi.Operations.Lifecycle;
using PollingApi.Operations.Worker;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>
/// "Why is it waiting?": a pending operation's <c>queue</c> (position, reason, expected start) and the <c>Retry-After</c>
/// drawn from the same estimate, on a node with one handler slot and retries that wait five minutes.
/// </summary>
public sealed class QueuePositionTests(QueuePositionPollingApiFactory factory) : IClassFixture<QueuePositionPollingApiFactory>, IAsyncLifetime
{
    private const string Kind = "diagnostics.sleep";
    private const string KindRoute = "/v1/admin/kinds/" + Kind;
    private readonly HttpClient _client = factory.CreateClient();
    private HttpClient _admin = null!;

    public async Task InitializeAsync() => _admin = factory.CreateClient(await factory.CreateApiKeyAsync("operators", "admin"));

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task AScheduledOperationSaysScheduledAndIsExpectedNoEarlierThanItsTime()
    {
        var at = TimeProvider.System.GetUtcNow().AddMinutes(10);
        var submitted = await _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody("""{"durationMs": 1}"""),
            request => request.Headers.TryAddWithoutValidation("Operation-Scheduled-At",
                at.ToString("yyyy-MM-dd'T'HH:mm:ss.fffK", CultureInfo.InvariantCulture)));
        var id = submitted.Json.GetProperty("id").GetGuid();
        try
        {
            await RefreshStatisticsAsync();

            var polled = await _client.FetchAsync($"/v1/operations/{id}");

            Assert.Equal(HttpStatusCode.Accepted, submitted.Status);
            Assert.Equal("scheduled", Queue(submitted).GetProperty("reason").GetString());
            Assert.Equal(HttpStatusCode.Accepted, polled.Status);
            var queue = Queue(polled);
            Assert.Equal("scheduled", queue.GetProperty("reason").GetString());
            Assert.Equal(0, queue.GetProperty("position").GetInt32());
            var scheduledAt = polled.Json.GetProperty("scheduledAt").GetDateTime().ToUniversalTime();
            var expected = StartOf(queue);
            Assert.True(expected >= scheduledAt, $"Expected to start at {expected:O}, before its time {scheduledAt:O}.");
            // Ten minutes away: the longest advice there is.
            Assert.Equal(30, RetryAfter.Seconds(polled));
            var row = await factory.Operations.GetAsync(id);
            Assert.Equal(("pending", 0), (row.Status, row.Attempts));
        }
        finally
        {
            await _client.SendAsync(HttpMethod.Post, $"/v1/operations/{id}/cancel", null);
        }
    }

    [Fact]
    public async Task ARetryWaitingOutItsBackoffSaysRetryBackoffAndIsExpectedWhenItFallsDue()
    {
        var submitted = await _client.SubmitSleepAsync("""{"durationMs": 1, "failTimes": 1}""");
        var id = submitted.Json.GetProperty("id").GetGuid();
        try
        {
            await Eventually.WaitUntilAsync(async () => await factory.Operations.FindAsync(id) is { Status: "pending", Attempts: 1 },
                TimeSpan.FromSeconds(20));
            await RefreshStatisticsAsync();

            var polled = await _client.FetchAsync($"/v1/operations/{id}");

            Assert.Equal(HttpStatusCode.Accepted, polled.Status);
            Assert.Equal("pending", polled.Json.GetProperty("status").GetString());
            var queue = Queue(polled);
            Assert.Equal("retry-backoff", queue.GetProperty("reason").GetString());
            Assert.Equal(0, queue.GetProperty("position").GetInt32());
            var nextAttemptAt = polled.Json.GetProperty("nextAttemptAt").GetDateTime().ToUniversalTime();
            // Half of the 10-minute cap, as the node's backoff is set to give.
            Assert.True(nextAttemptAt > TimeProvider.System.GetUtcNow().UtcDateTime.AddMinutes(4), $"The retry is due at {nextAttemptAt:O}.");
            var expected = StartOf(queue);
            Assert.True(expected >= nextAttemptAt, $"Expected to start at {expected:O}, before the retry is due at {nextAttemptAt:O}.");
            Assert.Equal(30, RetryAfter.Seconds(polled));
            var row = await factory.Operations.GetAsync(id);
            Assert.Equal(("pending", 1, (string?)null), (row.Status, row.Attempts, row.Error));
        }
        finally
        {
            await _client.SendAsync(HttpMethod.Post, $"/v1/operations/{id}/cancel", null);
        }
    }

    [Fact]
    public async Task AnOperationOfAPausedKindSaysPausedWithNoExpectedStartUntilTheKindIsResumed()
    {
        var paused = await _admin.SendAsync(HttpMethod.Put, KindRoute, PollingApiClient.JsonBody("""{"paused": true}"""));
        Guid id = Guid.Empty;
        try
        {
            Assert.Equal(HttpStatusCode.OK, paused.Status);
            var submitted = await _client.SubmitSleepAsync("""{"durationMs": 1}""");
            id = submitted.Json.GetProperty("id").GetGuid();
            await RefreshStatisticsAsync();

            var polled = await _client.FetchAsync($"/v1/operations/{id}");

            Assert.Equal(HttpStatusCode.Accepted, submitted.Status);
            // The submit's answer comes from the statistics as last read, which may predate earlier tests' clean-up.
            Assert.Equal("paused", Queue(submitted).GetProperty("reason").GetString());
            Assert.Equal(JsonValueKind.Null, Queue(submitted).GetProperty("estimatedStartAt").ValueKind);
            Assert.Equal(HttpStatusCode.Accepted, polled.Status);
            JsonAssert.Equivalent("""{"position": 0, "reason": "paused", "estimatedStartAt": null}""", Queue(polled));
            // Nothing starts it until an operator resumes the kind: the longest advice there is.
            Assert.Equal(30, RetryAfter.Seconds(polled));
            var row = await factory.Operations.GetAsync(id);
            Assert.Equal(("pending", 0), (row.Status, row.Attempts));
            Assert.True(await IsPausedAsync(), "operation_kinds does not hold the kind as paused.");
        }
        finally
        {
            await ResetKindAsync();
        }

        var done = await _client.PollUntilDoneAsync(new Uri($"/v1/operations/{id}", UriKind.Relative), TimeSpan.FromSeconds(20));
        Assert.Equal("succeeded", done.Json.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, done.Json.GetProperty("queue").ValueKind);
    }

    [Fact]
    public async Task AnOperationHeldBackByItsKindsCapSaysConcurrencyLimit()
    {
        var capped = await _admin.SendAsync(HttpMethod.Put, KindRoute, PollingApiClient.JsonBody("""{"maxConcurrency": 1}"""));
        Guid holder = Guid.Empty;
        Guid waiting = Guid.Empty;
        try
        {
            Assert.Equal(HttpStatusCode.OK, capped.Status);
            holder = await StartLongSleepAsync();
            waiting = (await _client.SubmitSleepAsync("""{"durationMs": 1}""")).Json.GetProperty("id").GetGuid();
            await RefreshStatisticsAsync();

            var polled = await _client.FetchAsync($"/v1/operations/{waiting}");

            Assert.Equal(HttpStatusCode.Accepted, polled.Status);
            var queue = Queue(polled);
            Assert.Equal("concurrency-limit", queue.GetProperty("reason").GetString());
            Assert.Equal(0, queue.GetProperty("position").GetInt32());
            Assert.True(RetryAfter.Seconds(polled) >= 1);
            Assert.Equal("running", await factory.Operations.StatusOfAsync(holder));
            var row = await factory.Operations.GetAsync(waiting);
            Assert.Equal(("pending", 0), (row.Status, row.Attempts));
        }
        finally
        {
            await ResetKindAsync();
            await CancelAndWaitAsync(holder);
        }

        var done = await _client.PollUntilDoneAsync(new Uri($"/v1/operations/{waiting}", UriKind.Relative), TimeSpan.FromSeconds(20));
        Assert.Equal("succeeded", done.Json.GetProperty("status").GetString());
    }

    [Fact]
    public async Task AnOperationBehindABacklogHasAPositionAnExpectedStartAndARetryAfterThatAgree()
    {
        var holder = await StartLongSleepAsync();
        var backlog = new List<Guid>();
        try
        {
            // Lately, sleeps of 3 s ended every 5 s (with what earlier tests ended): the rate the backlog is worked off at, slow
            // enough for a start some seconds ahead and fast enough for a Retry-After below its bound.
            await InsertRecentCompletionsAsync(count: 12, every: TimeSpan.FromSeconds(5), run: TimeSpan.FromSeconds(3));
            for (int i = 0; i < 5; i++)
            {
                backlog.Add((await _client.SubmitSleepAsync("""{"durationMs": 1}""")).Json.GetProperty("id").GetGuid());
            }

            var read = TimeProvider.System.GetUtcNow().UtcDateTime;
            await RefreshStatisticsAsync();
            var before = TimeProvider.System.GetUtcNow().UtcDateTime;
            var last = await _client.FetchAsync($"/v1/operations/{backlog[^1]}");
            var after = TimeProvider.System.GetUtcNow().UtcDateTime;
            var first = await _client.FetchAsync($"/v1/operations/{backlog[0]}");
            var page = await _client.FetchAsync($"/v1/operations?kind={Kind}&status=pending");
            var statistics = factory.Services.GetRequiredService<OperationStatistics>().For(Kind);
            double meanRun = statistics?.MeanRunSeconds ?? 0;
            double rate = statistics?.CompletionsPerSecond ?? 0;

            Assert.Equal(HttpStatusCode.Accepted, last.Status);
            var queue = Queue(last);
            Assert.Equal("queued", queue.GetProperty("reason").GetString());
            // The other four are ahead, less what the rate claimed between the statistics' read and the answer.
            Assert.InRange(queue.GetProperty("position").GetInt32(), (int)Math.Floor(4 - rate * (after - read).TotalSeconds), 4);
            var expected = StartOf(queue);
            Assert.True(expected > after, $"Expected to start at {expected:O}, not after the answer at {after:O}.");
            // Retry-After: until the expected start, plus the kind's mean run time, clamped to 1..30 s.
            int earliest = Advice((expected - after).TotalSeconds + meanRun);
            int latest = Advice((expected - before).TotalSeconds + meanRun);
            Assert.True(earliest < 30, $"The expected start {expected:O} is too far ahead to see Retry-After follow it.");
            Assert.InRange(RetryAfter.Seconds(last), earliest, latest);
            Assert.Equal("queued", Queue(first).GetProperty("reason").GetString());
            Assert.Equal(0, Queue(first).GetProperty("position").GetInt32());
            // The list shows the same estimate for each pending operation.
            var listed = page.Json.GetProperty("items").EnumerateArray().ToDictionary(item => item.GetProperty("id").GetGuid());
            Assert.Equal(backlog.Order(), listed.Keys.Order());
            Assert.Equal("queued", listed[backlog[^1]].GetProperty("queue").GetProperty("reason").GetString());
            Assert.True(listed[backlog[^1]].GetProperty("queue").GetProperty("position").GetInt32() > 0, page.ToString());
            Assert.Equal("running", await factory.Operations.StatusOfAsync(holder));
            foreach (var id in backlog)
            {
                var row = await factory.Operations.GetAsync(id);
                Assert.Equal(("pending", 0), (row.Status, row.Attempts));
            }
        }
        finally
        {
            foreach (var id in backlog)
            {
                await _client.SendAsync(HttpMethod.Post, $"/v1/operations/{id}/cancel", null);
            }

            await CancelAndWaitAsync(holder);
        }
    }

    [Fact]
    public async Task ARunningOrFinishedOperationHasNoQueue()
    {
        var running = await StartLongSleepAsync();

        var whileRunning = await _client.FetchAsync($"/v1/operations/{running}");
        await CancelAndWaitAsync(running);
        var cancelled = await _client.FetchAsync($"/v1/operations/{running}");
        var succeeded = await _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody("""{"durationMs": 1}"""),
            request => request.Headers.TryAddWithoutValidation("Prefer", "wait=20"));

        Assert.Equal(HttpStatusCode.Accepted, whileRunning.Status);
        Assert.Equal("running", whileRunning.Json.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, whileRunning.Json.GetProperty("queue").ValueKind);
        Assert.Equal("cancelled", cancelled.Json.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, cancelled.Json.GetProperty("queue").ValueKind);
        Assert.Equal(HttpStatusCode.OK, succeeded.Status);
        Assert.Equal("succeeded", succeeded.Json.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, succeeded.Json.GetProperty("queue").ValueKind);
        Assert.Equal("succeeded", await factory.Operations.StatusOfAsync(succeeded.Json.GetProperty("id").GetGuid()));
    }

    private static JsonElement Queue(ApiResponse response)
    {
        var queue = response.Json.GetProperty("queue");
        Assert.True(queue.ValueKind == JsonValueKind.Object, $"Expected a queue object: {response}");
        return queue;
    }

    private static DateTime StartOf(JsonElement queue)
    {
        var start = queue.GetProperty("estimatedStartAt");
        Assert.True(start.ValueKind == JsonValueKind.String, $"Expected an estimated start: {queue}");
        return start.GetDateTime().ToUniversalTime();
    }

    /// <summary>The Retry-After the default bounds make of <paramref name="seconds"/>.</summary>
    private static int Advice(double seconds) => Math.Max(1, (int)Math.Ceiling(Math.Clamp(seconds, 1, 30)));

    /// <summary>Reads the statistics now, as the node's refresh job does every 5 s.</summary>
    private Task RefreshStatisticsAsync() =>
        ActivatorUtilities.CreateInstance<StatisticsRefreshJob>(factory.Services).RefreshAsync(CancellationToken.None);

    /// <summary>Submits a sleep of a minute and waits until it runs: it holds the node's only handler slot.</summary>
    private async Task<Guid> StartLongSleepAsync()
    {
        var id = (await _client.SubmitSleepAsync("""{"durationMs": 60000}""")).Json.GetProperty("id").GetGuid();
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(id) == "running", TimeSpan.FromSeconds(20));
        return id;
    }

    private async Task CancelAndWaitAsync(Guid id)
    {
        if (id == Guid.Empty)
        {
            return;
        }

        await _client.SendAsync(HttpMethod.Post, $"/v1/operations/{id}/cancel", null);
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(id) is "cancelled" or "succeeded" or "failed",
            TimeSpan.FromSeconds(20));
    }

    private async Task ResetKindAsync()
    {
        var reset = await _admin.SendAsync(HttpMethod.Put, KindRoute, PollingApiClient.JsonBody("{}"));
        Assert.Equal(HttpStatusCode.OK, reset.Status);
    }

    private async Task<bool> IsPausedAsync()
    {
        await using var connection = new NpgsqlConnection(factory.DatabaseConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT paused FROM operation_kinds WHERE kind = @kind", connection);
        command.Parameters.AddWithValue("kind", Kind);
        return await command.ExecuteScalarAsync() is true;
    }

    /// <summary>Sleeps of another tenant that succeeded lately, one every <paramref name="every"/>, each running <paramref name="run"/>.</summary>
    private async Task InsertRecentCompletionsAsync(int count, TimeSpan every, TimeSpan run)
    {
        await using var connection = new NpgsqlConnection(factory.DatabaseConnectionString);
        await connection.OpenAsync();
        await using var insert = new NpgsqlCommand("""
            INSERT INTO operations (id, owner, kind, status, payload, attempts, max_attempts, next_attempt_at,
                                    created_at, updated_at, started_at, completed_at, result)
            SELECT gen_random_uuid(), 'history', @kind, 'succeeded', '{}', 1, 5, done - @run,
                   done - @run, done, done - @run, done, '{}'
            FROM (SELECT now() - i * @every AS done FROM generate_series(0, @count - 1) AS i) AS history
            """, connection);
        insert.Parameters.AddWithValue("kind", Kind);
        insert.Parameters.AddWithValue("run", run);
        insert.Parameters.AddWithValue("every", every);
        insert.Parameters.AddWithValue("count", count);
        await insert.ExecuteNonQueryAsync();
    }
}

/// <summary>
/// A node with one handler slot, so one long sleep holds back everything behind it, and a retry backoff of exactly five
/// minutes (half of a 10-minute cap), so a retry's wait can be seen.
/// </summary>
public sealed class QueuePositionPollingApiFactory : PollingApiFactory
{
    protected override IEnumerable<(string Key, string Value)> Settings =>
    [
        ("Operations:MaxConcurrency", "1"),
        ("Operations:RetryBaseDelay", "00:10:00"),
        ("Operations:RetryMaxDelay", "00:10:00"),
    ];

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        base.ConfigureWebHost(builder);
        builder.ConfigureTestServices(services => services.AddSingleton(provider =>
            new RetryBackoff(provider.GetRequiredService<IOptions<OperationsOptions>>(), new HalfwayRandom())));
    }

    private sealed class HalfwayRandom : Random
    {
        public override double NextDouble() => 0.5;
    }
}
