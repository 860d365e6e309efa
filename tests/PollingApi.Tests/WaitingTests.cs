using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PollingApi.Tests.Infrastructure;
using PollingApi.Operations.Lifecycle;

namespace PollingApi.Tests;

/// <summary>Waiting instead of polling: Prefer: wait on submit and ?wait= long-polls.</summary>
public sealed class WaitingTests(PollingApiFactory factory) : IClassFixture<PollingApiFactory>
{
    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task PreferWaitAnswers200WithTheFinishedOperationWhenItFinishesInTime()
    {
        var response = await SubmitAsync("""{"durationMs": 50}""", "respond-async, wait=20");

        Assert.Equal(HttpStatusCode.OK, response.Status);
        Assert.Equal("wait=20", response.Header("Preference-Applied"));
        Assert.Equal("succeeded", response.Json.GetProperty("status").GetString());
        Assert.Equal(50, response.Json.GetProperty("result").GetProperty("sleptMs").GetInt32());
        Assert.NotNull(response.Header("Location"));
        Assert.Null(response.Header("Retry-After"));
    }

    [Fact]
    public async Task ReplayingAKeyOfAFinishedOperationAnswers200WithItsResult()
    {
        string key = $"done-{Guid.NewGuid()}";
        var first = await _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody("""{"durationMs": 10}"""),
            request =>
            {
                request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
                request.Headers.TryAddWithoutValidation("Prefer", "wait=20");
            });
        Assert.Equal(HttpStatusCode.OK, first.Status);

        var replay = await _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody("""{"durationMs": 10}"""),
            request => request.Headers.TryAddWithoutValidation("Idempotency-Key", key));

        Assert.Equal(HttpStatusCode.OK, replay.Status);
        Assert.Equal("true", replay.Header("Idempotent-Replayed"));
        Assert.Equal(first.Json.GetProperty("id").GetGuid(), replay.Json.GetProperty("id").GetGuid());
        Assert.Equal(10, replay.Json.GetProperty("result").GetProperty("sleptMs").GetInt32());
    }

    [Fact]
    public async Task PreferWaitThatRunsOutAnswersTheUsual202()
    {
        var clock = Stopwatch.StartNew();
        var response = await SubmitAsync("""{"durationMs": 20000}""", "wait=1");

        Assert.Equal(HttpStatusCode.Accepted, response.Status);
        Assert.Null(response.Header("Preference-Applied"));
        Assert.True(RetryAfter.Seconds(response) >= 1);
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task AMalformedWaitPreferenceIsIgnoredAsRfc7240Asks()
    {
        var response = await SubmitAsync("""{"durationMs": 20000}""", "wait=soon");
        Assert.Equal(HttpStatusCode.Accepted, response.Status);
        Assert.Null(response.Header("Preference-Applied"));
    }

    [Fact]
    public async Task ALongPollAnswersAsSoonAsTheOperationIsDone()
    {
        var submitted = await _client.SubmitSleepAsync("""{"durationMs": 300}""");
        var clock = Stopwatch.StartNew();

        var response = await _client.FetchAsync(submitted.Header("Location") + "?wait=30");

        Assert.Equal(HttpStatusCode.OK, response.Status);
        Assert.Equal("succeeded", response.Json.GetProperty("status").GetString());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"answered after {clock.Elapsed}, not as soon as done");
    }

    [Fact]
    public async Task ALongPollThatRunsOutAnswers202WithRetryAfter()
    {
        var submitted = await _client.SubmitSleepAsync("""{"durationMs": 30000}""");
        var clock = Stopwatch.StartNew();

        var response = await _client.FetchAsync(submitted.Header("Location") + "?wait=1");

        Assert.Equal(HttpStatusCode.Accepted, response.Status);
        Assert.True(RetryAfter.Seconds(response) >= 1);
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(0.9), $"answered after {clock.Elapsed}, before the wait ran out");
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("-1")]
    [InlineData("1.5")]
    public async Task AMalformedWaitQueryAnswers400(string wait)
    {
        var submitted = await _client.SubmitSleepAsync("""{"durationMs": 1}""");
        string path = new Uri(submitted.Header("Location")!).AbsolutePath;

        var response = await _client.FetchAsync($"{path}?wait={wait}");

        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, "urn:pollingapi:problem:validation-failed", path);
        Assert.True(problem.GetProperty("errors").TryGetProperty("wait", out _));
    }

    [Fact]
    public async Task OnAnIdleWorkerASubmitIsStoredAlreadyRunningAndPreferWaitIsAnsweredFromItsCompletion()
    {
        // Once the worker's last claim found the queue empty, a submit takes a free handler slot as it is stored.
        ApiResponse submitted = null!;
        await Eventually.WaitUntilAsync(async () =>
        {
            submitted = await _client.SubmitSleepAsync("""{"durationMs": 100}""");
            return submitted.Json.GetProperty("status").GetString() == "running";
        }, TimeSpan.FromSeconds(20));

        Assert.Equal(HttpStatusCode.Accepted, submitted.Status);
        Assert.Equal(1, submitted.Json.GetProperty("attempts").GetInt32());
        Assert.NotNull(submitted.Json.GetProperty("links").GetProperty("cancel").GetString());
        Assert.True(RetryAfter.Seconds(submitted) >= 1);
        var done = await _client.PollUntilDoneAsync(submitted.Headers.Location!, TimeSpan.FromSeconds(20));
        Assert.Equal("succeeded", done.Json.GetProperty("status").GetString());
        Assert.Equal(1, done.Json.GetProperty("attempts").GetInt32());
        var id = submitted.Json.GetProperty("id").GetGuid();
        Assert.True(await ClaimedAsStoredAsync(id), "the row's first attempt started when it was created: no claim took it later");

        ApiResponse waited = null!;
        await Eventually.WaitUntilAsync(async () =>
        {
            waited = await SubmitAsync("""{"durationMs": 0}""", "wait=10");
            return await ClaimedAsStoredAsync(waited.Json.GetProperty("id").GetGuid());
        }, TimeSpan.FromSeconds(20));
        Assert.Equal(HttpStatusCode.OK, waited.Status);
        Assert.Equal("wait=10", waited.Header("Preference-Applied"));
        Assert.Equal("succeeded", waited.Json.GetProperty("status").GetString());
        Assert.Equal(0, waited.Json.GetProperty("result").GetProperty("sleptMs").GetInt32());
        // The answer is the row as the completion stored it.
        var read = await _client.FetchAsync(waited.Headers.Location!);
        Assert.Equal(read.Header("ETag"), waited.Header("ETag"));
        Assert.Equal(read.Json.GetRawText(), waited.Json.GetRawText());
    }

    private async Task<bool> ClaimedAsStoredAsync(Guid id)
    {
        await using var connection = new NpgsqlConnection(factory.DatabaseConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT started_at = created_at AND attempts = 1 FROM operations WHERE id = @id", connection);
        command.Parameters.AddWithValue("id", id);
        return await command.ExecuteScalarAsync() is true;
    }

    private Task<ApiResponse> SubmitAsync(string json, string prefer) =>
        _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody(json),
            request => request.Headers.TryAddWithoutValidation("Prefer", prefer));
}

/// <summary>A node whose longest wait is one second.</summary>
public sealed class ShortWaitPollingApiFactory : PollingApiFactory
{
    protected override IEnumerable<(string Key, string Value)> Settings => [("Operations:MaxWait", "00:00:01")];
}

public sealed class WaitCapTests(ShortWaitPollingApiFactory factory) : IClassFixture<ShortWaitPollingApiFactory>
{
    [Fact]
    public async Task WaitsAreCappedByConfiguration()
    {
        var client = factory.CreateClient();
        var submitted = await client.SubmitSleepAsync("""{"durationMs": 30000}""");
        var clock = Stopwatch.StartNew();

        var response = await client.FetchAsync(submitted.Header("Location") + "?wait=600");

        Assert.Equal(HttpStatusCode.Accepted, response.Status);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"held for {clock.Elapsed} despite Operations:MaxWait of 1 s");
    }
}

/// <summary>Many long-polls share one notification path: waiting costs no queries, a completion costs one read per waiter.</summary>
public sealed class LongPollCostTests(ApiOnlyPollingApiFactory factory) : IClassFixture<ApiOnlyPollingApiFactory>
{
    private const int Clients = 200;

    [Fact]
    public async Task TwoHundredLongPollsCostOneQueryEachPerCompletionNotAQueryLoop()
    {
        var client = factory.CreateClient();
        var ids = new List<Guid>();
        for (int i = 0; i < Clients; i++)
        {
            ids.Add((await client.SubmitSleepAsync("""{"durationMs": 1}""")).Json.GetProperty("id").GetGuid());
        }

        string database = new NpgsqlConnectionStringBuilder(factory.DatabaseConnectionString).Database!;
        using var counter = new DatabaseCommandCounter(database);
        var waiters = factory.Services.GetRequiredService<OperationWaiters>();
        var polls = ids.Select(id => client.FetchAsync($"/v1/operations/{id}?wait=60")).ToList();
        // A waiter registers before its first read, so wait for both.
        await Eventually.WaitUntilAsync(() => Task.FromResult(waiters.Count == Clients && counter.Count >= Clients), TimeSpan.FromSeconds(30));
        long whileRegistering = counter.Count;

        // An observation window: a poll loop of even 10 per second per client would run thousands of queries here.
        await Task.Delay(TimeSpan.FromSeconds(2));
        long whileWaiting = counter.Count - whileRegistering;

        // Another node's worker finishes them all: the database notifies, the node wakes each waiter once.
        await using (var connection = new NpgsqlConnection(factory.DatabaseConnectionString))
        {
            await connection.OpenAsync();
            await using var finish = new NpgsqlCommand("""
                UPDATE operations SET status = 'succeeded', result = '{"sleptMs":1,"attempt":1}', completed_at = now(),
                                      updated_at = now(), version = version + 1
                WHERE id = ANY(@ids)
                """, connection);
            finish.Parameters.AddWithValue("ids", ids.ToArray());
            Assert.Equal(Clients, await finish.ExecuteNonQueryAsync());

            // ...and publishes what it finished, as every node does after its commits.
            await using var notify = new NpgsqlCommand("SELECT pg_notify('pollingapi_operation_done', @payload)", connection);
            notify.Parameters.AddWithValue("payload", string.Join(',', ids));
            await notify.ExecuteNonQueryAsync();
        }

        var answers = await Task.WhenAll(polls);
        long afterCompletion = counter.Count - whileRegistering - whileWaiting;

        Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.Status));
        // Registering: one read each. Waiting: no per-request queries, only the node's own maintenance (lease rescue
        // runs every second in these tests, statistics every five): a few dozen at most, whatever the number of waiters.
        Assert.InRange(whileRegistering, Clients, Clients + 10);
        Assert.InRange(whileWaiting, 0, 30);
        // Completion: one re-read per waiter, and nothing else per waiter.
        Assert.InRange(afterCompletion, Clients, Clients + 10);
    }
}
