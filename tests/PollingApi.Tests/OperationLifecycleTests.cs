using System.Net;
using System.Text.Json;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>Operations run by the node's worker: running, succeeding, failing, retrying.</summary>
public sealed class OperationLifecycleTests(PollingApiFactory factory) : IClassFixture<PollingApiFactory>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task PollingARunningOperationAnswers202WithStatusRunningAndOneAttempt()
    {
        var (id, location) = await SubmitAsync("""{"durationMs": 30000}""");
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(id) == "running", Deadline);

        var response = await _client.FetchAsync(location);

        Assert.True(response.Status == HttpStatusCode.Accepted, response.ToString());
        Assert.True(RetryAfter.Seconds(response) >= 1);
        var operation = response.Json;
        Assert.Equal("running", operation.GetProperty("status").GetString());
        Assert.False(operation.GetProperty("done").GetBoolean());
        Assert.Equal(1, operation.GetProperty("attempts").GetInt32());
        Assert.Equal(JsonValueKind.Null, operation.GetProperty("result").ValueKind);
        Assert.Equal(JsonValueKind.Null, operation.GetProperty("completedAt").ValueKind);
        var row = await factory.Operations.GetAsync(id);
        Assert.Equal(1, row.Attempts);
        Assert.NotNull(row.LockedBy);
    }

    [Fact]
    public async Task ASleepCompletesAndPollingAnswers200WithItsResult()
    {
        var (id, location) = await SubmitAsync("""{"durationMs": 50}""");

        var response = await _client.PollUntilDoneAsync(location, Deadline);

        Assert.Equal("application/json", response.MediaType);
        Assert.Null(response.Header("Retry-After"));
        var operation = response.Json;
        Assert.Equal(id, operation.GetProperty("id").GetGuid());
        Assert.Equal("succeeded", operation.GetProperty("status").GetString());
        Assert.True(operation.GetProperty("done").GetBoolean());
        Assert.Equal(1, operation.GetProperty("attempts").GetInt32());
        var completedAt = operation.GetProperty("completedAt").GetDateTimeOffset();
        Assert.True(completedAt >= operation.GetProperty("createdAt").GetDateTimeOffset());
        JsonAssert.Equivalent("""{"sleptMs":50,"attempt":1}""", operation.GetProperty("result"));
        Assert.Equal(JsonValueKind.Null, operation.GetProperty("error").ValueKind);
        Assert.Equal(location.ToString(), operation.GetProperty("links").GetProperty("self").GetString());

        var row = await factory.Operations.GetAsync(id);
        Assert.Equal("succeeded", row.Status);
        Assert.Equal(1, row.Attempts);
        Assert.Null(row.LockedBy);
        Assert.Null(row.Error);
        Assert.NotNull(row.CompletedAt);
        JsonAssert.Equivalent("""{"sleptMs":50,"attempt":1}""", row.Result!);
    }

    [Fact]
    public async Task APermanentFailureEndsFailedAfterOneAttemptWithAProblemAndNoExceptionText()
    {
        var (id, location) = await SubmitAsync("""{"durationMs": 1, "failPermanently": true}""");

        var response = await _client.PollUntilDoneAsync(location, Deadline);

        ProblemAssert.NoExceptionText(response.Body);
        Assert.Null(response.Header("Retry-After"));
        var operation = response.Json;
        Assert.Equal("failed", operation.GetProperty("status").GetString());
        Assert.True(operation.GetProperty("done").GetBoolean());
        Assert.Equal(1, operation.GetProperty("attempts").GetInt32());
        Assert.Equal(JsonValueKind.Null, operation.GetProperty("result").ValueKind);
        var error = operation.GetProperty("error");
        Assert.Equal("urn:pollingapi:problem:diagnostics-permanent-failure", error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("title").GetString()));

        var row = await factory.Operations.GetAsync(id);
        Assert.Equal("failed", row.Status);
        Assert.Equal(1, row.Attempts);
        Assert.Null(row.Result);
        Assert.NotNull(row.CompletedAt);
        Assert.Equal("urn:pollingapi:problem:diagnostics-permanent-failure",
            JsonSerializer.Deserialize<JsonElement>(row.Error!).GetProperty("type").GetString());
    }

    [Fact]
    public async Task TransientFailuresAreRetriedUntilTheSleepSucceeds()
    {
        var (id, location) = await SubmitAsync("""{"durationMs": 1, "failTimes": 2}""");

        var response = await _client.PollUntilDoneAsync(location, Deadline);

        var operation = response.Json;
        Assert.Equal("succeeded", operation.GetProperty("status").GetString());
        Assert.Equal(3, operation.GetProperty("attempts").GetInt32());
        Assert.Equal(3, operation.GetProperty("result").GetProperty("attempt").GetInt32());
        Assert.Equal(JsonValueKind.Null, operation.GetProperty("error").ValueKind);
        Assert.Equal(JsonValueKind.Null, operation.GetProperty("nextAttemptAt").ValueKind);
        var row = await factory.Operations.GetAsync(id);
        Assert.Equal(("succeeded", 3), (row.Status, row.Attempts));
    }

    [Fact]
    public async Task TransientFailuresOnEveryAttemptEndFailedWithAttemptsExhausted()
    {
        var (id, location) = await SubmitAsync("""{"durationMs": 1, "failTimes": 10}""");

        var response = await _client.PollUntilDoneAsync(location, Deadline);

        ProblemAssert.NoExceptionText(response.Body);
        Assert.DoesNotContain("Simulated", response.Body, StringComparison.Ordinal);
        var operation = response.Json;
        Assert.Equal("failed", operation.GetProperty("status").GetString());
        Assert.Equal(5, operation.GetProperty("attempts").GetInt32());
        Assert.Equal(5, operation.GetProperty("maxAttempts").GetInt32());
        Assert.Equal(JsonValueKind.Null, operation.GetProperty("result").ValueKind);
        var error = operation.GetProperty("error");
        Assert.Equal("urn:pollingapi:problem:attempts-exhausted", error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("title").GetString()));
        var row = await factory.Operations.GetAsync(id);
        Assert.Equal(("failed", 5), (row.Status, row.Attempts));
    }

    private async Task<(Guid Id, Uri Location)> SubmitAsync(string json)
    {
        var response = await _client.SubmitSleepAsync(json);
        Assert.True(response.Status == HttpStatusCode.Accepted, response.ToString());
        return (response.Json.GetProperty("id").GetGuid(), response.Headers.Location!);
    }
}
