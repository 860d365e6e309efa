using System.Globalization;
using System.Net;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>Operation-Scheduled-At: stored pending with scheduledAt, not started before then, started soon after.</summary>
public sealed class ScheduledSubmitTests(PollingApiFactory factory) : IClassFixture<PollingApiFactory>
{
    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task AScheduledOperationWaitsPendingUntilItsTimeAndThenRuns()
    {
        var at = TimeProvider.System.GetUtcNow().AddSeconds(2);
        string header = at.ToString("yyyy-MM-dd'T'HH:mm:ss.fffK", CultureInfo.InvariantCulture);

        var submitted = await SubmitAsync("""{"durationMs": 1}""", header, wait: 1);
        var id = submitted.Json.GetProperty("id").GetGuid();
        var before = await _client.FetchAsync($"/v1/operations/{id}");
        string? statusBefore = await factory.Operations.StatusOfAsync(id);
        var done = await _client.PollUntilDoneAsync(new Uri($"/v1/operations/{id}", UriKind.Relative), TimeSpan.FromSeconds(30));
        var attempts = (await _client.FetchAsync($"/v1/operations/{id}/attempts")).Json.GetProperty("items");

        Assert.Equal(HttpStatusCode.Accepted, submitted.Status);
        Assert.Equal("pending", submitted.Json.GetProperty("status").GetString());
        Assert.Equal(at.UtcDateTime, submitted.Json.GetProperty("scheduledAt").GetDateTime().ToUniversalTime(), TimeSpan.FromMilliseconds(1));
        Assert.Equal("pending", before.Json.GetProperty("status").GetString());
        Assert.Equal("pending", statusBefore);
        Assert.Equal("succeeded", done.Json.GetProperty("status").GetString());
        var attempt = Assert.Single(attempts.EnumerateArray());
        Assert.True(attempt.GetProperty("startedAt").ValueKind == System.Text.Json.JsonValueKind.String, attempts.ToString());
        var started = attempt.GetProperty("startedAt").GetDateTime().ToUniversalTime();
        Assert.True(started >= at.UtcDateTime.AddMilliseconds(-1), $"It started at {started:O}, before its time {at.UtcDateTime:O}.");
        Assert.Equal(at.UtcDateTime, done.Json.GetProperty("scheduledAt").GetDateTime().ToUniversalTime(), TimeSpan.FromMilliseconds(1));
    }

    [Fact]
    public async Task AnInstantInThePastRunsNow()
    {
        var response = await SubmitAsync("""{"durationMs": 1}""", "2020-01-01T00:00:00Z", wait: 10);

        Assert.Equal(HttpStatusCode.OK, response.Status);
        Assert.Equal("succeeded", response.Json.GetProperty("status").GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, response.Json.GetProperty("scheduledAt").ValueKind);
    }

    [Theory]
    [InlineData("tomorrow")]
    [InlineData("2026-12-01 08:00:00Z")]
    [InlineData("2026-12-01T08:00:00")]
    [InlineData("2100-01-01T00:00:00Z")]
    public async Task AnInvalidOrTooDistantScheduleIsRefusedAndStoresNothing(string header)
    {
        long before = await factory.Operations.CountAsync();

        var response = await SubmitAsync("""{"durationMs": 1}""", header, wait: 0);

        ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, "urn:pollingapi:problem:invalid-scheduled-at", PollingApiClient.SleepRoute);
        Assert.Equal(before, await factory.Operations.CountAsync());
    }

    [Fact]
    public async Task AnIdempotentRetryWithTheSameScheduleGetsTheSameOperationAndAnotherScheduleIs422()
    {
        string key = "scheduled-" + Guid.NewGuid().ToString("N");
        string at = TimeProvider.System.GetUtcNow().AddMinutes(10).ToString("yyyy-MM-dd'T'HH:mm:ssK", CultureInfo.InvariantCulture);
        string other = TimeProvider.System.GetUtcNow().AddMinutes(20).ToString("yyyy-MM-dd'T'HH:mm:ssK", CultureInfo.InvariantCulture);

        var first = await SubmitAsync("""{"durationMs": 1}""", at, wait: 0, key);
        var again = await SubmitAsync("""{"durationMs": 1}""", at, wait: 0, key);
        var changed = await SubmitAsync("""{"durationMs": 1}""", other, wait: 0, key);

        Assert.Equal(HttpStatusCode.Accepted, first.Status);
        Assert.Equal(first.Json.GetProperty("id").GetGuid(), again.Json.GetProperty("id").GetGuid());
        Assert.Equal("true", again.Header("Idempotent-Replayed"));
        ProblemAssert.IsProblem(changed, (HttpStatusCode)422, "urn:pollingapi:problem:idempotency-key-reused", PollingApiClient.SleepRoute);
        Assert.Equal("pending", await factory.Operations.StatusOfAsync(first.Json.GetProperty("id").GetGuid()));
    }

    private Task<ApiResponse> SubmitAsync(string json, string scheduledAt, int wait, string? idempotencyKey = null) =>
        _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody(json), request =>
        {
            request.Headers.TryAddWithoutValidation("Operation-Scheduled-At", scheduledAt);
            if (wait > 0)
            {
                request.Headers.TryAddWithoutValidation("Prefer", $"wait={wait}");
            }

            if (idempotencyKey is not null)
            {
                request.Headers.TryAddWithoutValidation("Idempotency-Key", idempotencyKey);
            }
        });
}
