using System.Net;
using System.Text.Json;
using Dapper;
using Npgsql;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>
/// The queue controls over HTTP: per-kind settings (GET and PUT /v1/admin/kinds), pausing and resuming a kind, the
/// attempt timeout in the attempt history, and Operation-Priority.
/// </summary>
public sealed class QueueControlApiTests(SecuredPollingApiFactory factory) : IClassFixture<SecuredPollingApiFactory>, IAsyncLifetime
{
    private const string Sleep = "diagnostics.sleep";
    private HttpClient _admin = null!;
    private HttpClient _user = null!;

    public async Task InitializeAsync()
    {
        _admin = factory.CreateClient(await factory.CreateApiKeyAsync("operators", "admin", "operations:submit", "operations:read", "operations:manage"));
        _user = factory.CreateClient(await factory.CreateApiKeyAsync("queue-users", "operations:submit", "operations:read", "operations:manage"));
    }

    // Every test leaves the kind as it found it: the class's tests share one database.
    public async Task DisposeAsync() => await PutAsync(Sleep, "{}");

    [Fact]
    public async Task EveryRegisteredKindIsListedWithTheDefaultsUntilAnOperatorChangesIt()
    {
        var response = await _admin.FetchAsync("/v1/admin/kinds");

        Assert.Equal(HttpStatusCode.OK, response.Status);
        var items = response.Json.GetProperty("items").EnumerateArray().ToList();
        var kinds = items.Select(i => i.GetProperty("kind").GetString()).ToList();
        Assert.Equal(kinds.Order(StringComparer.Ordinal), kinds);
        Assert.Contains("accounts.open", kinds);
        var accounts = items.Single(i => i.GetProperty("kind").GetString() == "accounts.open");
        Assert.False(accounts.GetProperty("paused").GetBoolean());
        Assert.Equal(JsonValueKind.Null, accounts.GetProperty("maxConcurrency").ValueKind);
        Assert.Equal(JsonValueKind.Null, accounts.GetProperty("attemptTimeoutSeconds").ValueKind);
        Assert.Equal(5, accounts.GetProperty("priority").GetInt32());
        Assert.Equal(JsonValueKind.Null, accounts.GetProperty("updatedAt").ValueKind);
    }

    [Fact]
    public async Task PutStoresAKindsSettingsAndTheKindsPriorityBecomesTheDefaultOfNewOperations()
    {
        var put = await PutAsync(Sleep, """{"paused": false, "maxConcurrency": 4, "attemptTimeoutSeconds": 30, "priority": 7}""");
        var read = await _admin.FetchAsync($"/v1/admin/kinds/{Sleep}");
        var submitted = await _user.SubmitSleepAsync("""{"durationMs": 1}""");

        Assert.Equal(HttpStatusCode.OK, put.Status);
        Assert.Equal(4, put.Json.GetProperty("maxConcurrency").GetInt32());
        Assert.Equal(30, put.Json.GetProperty("attemptTimeoutSeconds").GetInt32());
        Assert.Equal(7, put.Json.GetProperty("priority").GetInt32());
        Assert.Equal(JsonValueKind.String, put.Json.GetProperty("updatedAt").ValueKind);
        Assert.Equal(put.Body, read.Body);
        await using var connection = new NpgsqlConnection(factory.DatabaseConnectionString);
        var row = await connection.QuerySingleAsync<(bool Paused, int? MaxConcurrency, int? Timeout, short Priority)>(
            "SELECT paused, max_concurrency, attempt_timeout_seconds, priority FROM operation_kinds WHERE kind = @Sleep", new { Sleep });
        Assert.Equal((false, 4, 30, (short)7), row);
        var id = submitted.Json.GetProperty("id").GetGuid();
        Assert.Equal(7, submitted.Json.GetProperty("priority").GetInt32());
        Assert.Equal(7, await connection.ExecuteScalarAsync<short>("SELECT priority FROM operations WHERE id = @id", new { id }));
    }

    [Fact]
    public async Task APausedKindsOperationsWaitWhileOthersRunAndResumingRunsThem()
    {
        await PutAsync(Sleep, """{"paused": true}""");
        var paused = await _user.SubmitSleepAsync("""{"durationMs": 1}""");
        var pausedId = paused.Json.GetProperty("id").GetGuid();
        // Another kind, submitted after it, runs: the worker has claimed since and passed the paused one by.
        var other = await _user.SendAsync(HttpMethod.Post, "/v1/accounts", PollingApiClient.JsonBody("""{"currency": "EUR", "openingBalance": 0}"""),
            request => request.Headers.TryAddWithoutValidation("Prefer", "wait=30"));

        Assert.Equal(HttpStatusCode.Accepted, paused.Status);
        Assert.Equal(HttpStatusCode.OK, other.Status);
        Assert.Equal("pending", await factory.Operations.StatusOfAsync(pausedId));

        var resumed = await PutAsync(Sleep, """{"paused": false}""");
        var done = await _user.PollUntilDoneAsync(new Uri($"/v1/operations/{pausedId}", UriKind.Relative), TimeSpan.FromSeconds(30));

        Assert.False(resumed.Json.GetProperty("paused").GetBoolean());
        Assert.Equal("succeeded", done.Json.GetProperty("status").GetString());
    }

    [Fact]
    public async Task AnAttemptOverTheKindsTimeoutShowsInTheAttemptHistoryAsTimedOut()
    {
        await PutAsync(Sleep, """{"attemptTimeoutSeconds": 1}""");
        var submitted = await _user.SubmitSleepAsync("""{"durationMs": 60000}""");
        var id = submitted.Json.GetProperty("id").GetGuid();

        JsonElement first = default;
        await Eventually.WaitUntilAsync(async () =>
        {
            var items = (await _user.FetchAsync($"/v1/operations/{id}/attempts")).Json.GetProperty("items");
            if (items.GetArrayLength() == 0)
            {
                return false;
            }

            first = items[0];
            return first.GetProperty("outcome").GetString() != null && first.GetProperty("endedAt").ValueKind == JsonValueKind.String;
        }, TimeSpan.FromSeconds(30));
        var operation = await _user.FetchAsync($"/v1/operations/{id}");
        await _user.SendAsync(HttpMethod.Post, $"/v1/operations/{id}/cancel", null);

        Assert.Equal("timed_out", first.GetProperty("outcome").GetString());
        Assert.Equal("urn:pollingapi:problem:attempt-timed-out", first.GetProperty("error").GetProperty("type").GetString());
        Assert.Contains("1 s", first.GetProperty("error").GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.False(operation.Json.GetProperty("done").GetBoolean());
    }

    [Fact]
    public async Task InvalidSettingsAreRefusedWithAnErrorPerFieldAndStoreNothing()
    {
        var invalid = await PutAsync(Sleep, """{"maxConcurrency": 0, "attemptTimeoutSeconds": 100000, "priority": 10}""");
        var malformed = await PutAsync(Sleep, """{"paused": "yes"}""");
        var unknown = await PutAsync("no.such.kind", """{"paused": true}""");
        var forbidden = await _user.SendAsync(HttpMethod.Put, $"/v1/admin/kinds/{Sleep}", PollingApiClient.JsonBody("""{"paused": true}"""));

        var problem = ProblemAssert.IsProblem(invalid, HttpStatusCode.BadRequest, "urn:pollingapi:problem:validation-failed", $"/v1/admin/kinds/{Sleep}");
        var errors = problem.GetProperty("errors");
        Assert.True(errors.TryGetProperty("maxConcurrency", out _), invalid.Body);
        Assert.True(errors.TryGetProperty("attemptTimeoutSeconds", out _), invalid.Body);
        Assert.True(errors.TryGetProperty("priority", out _), invalid.Body);
        ProblemAssert.IsProblem(malformed, HttpStatusCode.BadRequest, "urn:pollingapi:problem:malformed-json", $"/v1/admin/kinds/{Sleep}");
        ProblemAssert.IsProblem(unknown, HttpStatusCode.NotFound, "urn:pollingapi:problem:kind-not-found", "/v1/admin/kinds/no.such.kind");
        ProblemAssert.IsProblem(forbidden, HttpStatusCode.Forbidden, "urn:pollingapi:problem:forbidden", $"/v1/admin/kinds/{Sleep}");
        await using var connection = new NpgsqlConnection(factory.DatabaseConnectionString);
        Assert.Equal(0, await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM operation_kinds WHERE paused OR max_concurrency IS NOT NULL"));
    }

    [Fact]
    public async Task OperationPriorityIsStoredShownAndPartOfTheIdempotentRequest()
    {
        string key = "priority-" + Guid.NewGuid().ToString("N");
        var high = await SubmitWithPriorityAsync("9", key);
        var again = await SubmitWithPriorityAsync("9", key);
        var other = await SubmitWithPriorityAsync("2", key);
        var id = high.Json.GetProperty("id").GetGuid();

        Assert.Equal(HttpStatusCode.Accepted, high.Status);
        Assert.Equal(9, high.Json.GetProperty("priority").GetInt32());
        Assert.Equal(id, again.Json.GetProperty("id").GetGuid());
        ProblemAssert.IsProblem(other, (HttpStatusCode)422, "urn:pollingapi:problem:idempotency-key-reused", PollingApiClient.SleepRoute);
        await using var connection = new NpgsqlConnection(factory.DatabaseConnectionString);
        Assert.Equal(9, await connection.ExecuteScalarAsync<short>("SELECT priority FROM operations WHERE id = @id", new { id }));
    }

    [Theory]
    [InlineData("10")]
    [InlineData("-1")]
    [InlineData("high")]
    [InlineData("1.5")]
    public async Task AnInvalidPriorityIsRefusedAndStoresNothing(string header)
    {
        long before = await factory.Operations.CountAsync();

        var response = await SubmitWithPriorityAsync(header);

        ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, "urn:pollingapi:problem:invalid-priority", PollingApiClient.SleepRoute);
        Assert.Equal(before, await factory.Operations.CountAsync());
    }

    private Task<ApiResponse> PutAsync(string kind, string json) =>
        _admin.SendAsync(HttpMethod.Put, $"/v1/admin/kinds/{kind}", PollingApiClient.JsonBody(json));

    private Task<ApiResponse> SubmitWithPriorityAsync(string priority, string? key = null) =>
        _user.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody("""{"durationMs": 600000}"""), request =>
        {
            request.Headers.TryAddWithoutValidation("Operation-Priority", priority);
            if (key is not null)
            {
                request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
            }
        });
}
