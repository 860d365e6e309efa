using System.Net;
using System.Text.Json;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>Cancel, retry, delete and list on a node that runs no worker, so states are set up precisely.</summary>
public sealed class ManagementTests(ApiOnlyPollingApiFactory factory) : IClassFixture<ApiOnlyPollingApiFactory>
{
    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task CancellingAPendingOperationCancelsItAtOnce()
    {
        var id = await SubmitAsync();

        var response = await PostAsync($"/v1/operations/{id}/cancel");

        Assert.Equal(HttpStatusCode.OK, response.Status);
        var body = response.Json;
        Assert.Equal("cancelled", body.GetProperty("status").GetString());
        Assert.True(body.GetProperty("done").GetBoolean());
        Assert.True(body.GetProperty("cancelRequested").GetBoolean());
        Assert.Equal("urn:pollingapi:problem:operation-cancelled", body.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal(JsonValueKind.Null, body.GetProperty("links").GetProperty("cancel").ValueKind);
        Assert.EndsWith($"/v1/operations/{id}/retry", body.GetProperty("links").GetProperty("retry").GetString(), StringComparison.Ordinal);
        var row = await factory.Operations.GetAsync(id);
        Assert.Equal("cancelled", row.Status);
        Assert.NotNull(row.CompletedAt);

        var again = await PostAsync($"/v1/operations/{id}/cancel");
        Assert.Equal(HttpStatusCode.OK, again.Status);
        Assert.Equal("cancelled", again.Json.GetProperty("status").GetString());
    }

    [Theory]
    [InlineData("succeeded")]
    [InlineData("failed")]
    public async Task CancellingAFinishedOperationAnswers409NamingItsStatus(string status)
    {
        var id = await SubmitAsync();
        await SetStatusAsync(id, status);

        var response = await PostAsync($"/v1/operations/{id}/cancel");

        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.Conflict, "urn:pollingapi:problem:operation-state-conflict",
            $"/v1/operations/{id}/cancel");
        Assert.Equal(status, problem.GetProperty("currentStatus").GetString());
        Assert.Contains(status, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(status, await factory.Operations.StatusOfAsync(id));
    }

    [Fact]
    public async Task RetryingAFailedOperationPutsItBackToPendingWithFreshAttempts()
    {
        var id = await SubmitAsync();
        await SetStatusAsync(id, "failed");

        var response = await PostAsync($"/v1/operations/{id}/retry");

        Assert.Equal(HttpStatusCode.Accepted, response.Status);
        Assert.EndsWith($"/v1/operations/{id}", response.Header("Location"), StringComparison.Ordinal);
        Assert.Equal(response.Header("Location"), response.Header("Operation-Location"));
        Assert.True(RetryAfter.Seconds(response) >= 1);
        var body = response.Json;
        Assert.Equal("pending", body.GetProperty("status").GetString());
        Assert.Equal(0, body.GetProperty("attempts").GetInt32());
        Assert.Equal(JsonValueKind.Null, body.GetProperty("error").ValueKind);
        Assert.Equal(JsonValueKind.Null, body.GetProperty("completedAt").ValueKind);
        var row = await factory.Operations.GetAsync(id);
        Assert.Equal("pending", row.Status);
        Assert.Null(row.Error);
        Assert.Equal(0, row.Attempts);
    }

    [Fact]
    public async Task RetryingACancelledOperationWorksAndRetryingAPendingOneAnswers409()
    {
        var id = await SubmitAsync();
        var conflict = await PostAsync($"/v1/operations/{id}/retry");
        var problem = ProblemAssert.IsProblem(conflict, HttpStatusCode.Conflict, "urn:pollingapi:problem:operation-state-conflict",
            $"/v1/operations/{id}/retry");
        Assert.Equal("pending", problem.GetProperty("currentStatus").GetString());

        await PostAsync($"/v1/operations/{id}/cancel");
        var retried = await PostAsync($"/v1/operations/{id}/retry");
        Assert.Equal(HttpStatusCode.Accepted, retried.Status);
        Assert.Equal("pending", await factory.Operations.StatusOfAsync(id));
    }

    [Fact]
    public async Task DeletingAFinishedOperationForgetsItAndDeletingAPendingOneAnswers409()
    {
        var id = await SubmitAsync();
        var conflict = await _client.SendAsync(HttpMethod.Delete, $"/v1/operations/{id}", null);
        var problem = ProblemAssert.IsProblem(conflict, HttpStatusCode.Conflict, "urn:pollingapi:problem:operation-state-conflict",
            $"/v1/operations/{id}");
        Assert.Equal("pending", problem.GetProperty("currentStatus").GetString());

        await SetStatusAsync(id, "succeeded");
        var deleted = await _client.SendAsync(HttpMethod.Delete, $"/v1/operations/{id}", null);

        Assert.Equal(HttpStatusCode.NoContent, deleted.Status);
        Assert.Equal("", deleted.Body);
        Assert.Null(await factory.Operations.FindAsync(id));
        var gone = await _client.FetchAsync($"/v1/operations/{id}");
        ProblemAssert.IsProblem(gone, HttpStatusCode.NotFound, "urn:pollingapi:problem:operation-not-found", $"/v1/operations/{id}");
    }

    [Theory]
    [InlineData("POST", "/cancel")]
    [InlineData("POST", "/retry")]
    [InlineData("DELETE", "")]
    public async Task ManagingAnUnknownOrMalformedIdAnswers404Or400(string method, string suffix)
    {
        string unknown = $"/v1/operations/{Guid.CreateVersion7()}{suffix}";
        var notFound = await _client.SendAsync(new HttpMethod(method), unknown, null);
        ProblemAssert.IsProblem(notFound, HttpStatusCode.NotFound, "urn:pollingapi:problem:operation-not-found", unknown);

        string malformed = $"/v1/operations/nope{suffix}";
        var bad = await _client.SendAsync(new HttpMethod(method), malformed, null);
        ProblemAssert.IsProblem(bad, HttpStatusCode.BadRequest, "urn:pollingapi:problem:invalid-operation-id", malformed);
    }

    [Fact]
    public async Task ListingPagesThroughOperationsNewestFirstWithAnOpaqueCursor()
    {
        string kind = "diagnostics.sleep";
        var since = (await _client.FetchAsync("/v1/operations?limit=1")).Json.GetProperty("items");
        var created = new List<Guid>();
        var start = TimeProvider.System.GetUtcNow().AddSeconds(-1);
        for (int i = 0; i < 5; i++)
        {
            created.Add(await SubmitAsync());
        }

        string after = Uri.EscapeDataString(start.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        var seen = new List<Guid>();
        string? cursor = null;
        int pages = 0;
        do
        {
            string url = $"/v1/operations?limit=2&kind={kind}&createdAfter={after}" + (cursor is null ? "" : $"&cursor={cursor}");
            var page = await _client.FetchAsync(url);
            Assert.Equal(HttpStatusCode.OK, page.Status);
            var items = page.Json.GetProperty("items").EnumerateArray().ToList();
            Assert.InRange(items.Count, 1, 2);
            seen.AddRange(items.Select(item => item.GetProperty("id").GetGuid()));
            var next = page.Json.GetProperty("nextCursor");
            cursor = next.ValueKind == JsonValueKind.Null ? null : next.GetString();
            pages++;
        }
        while (cursor is not null && pages < 10);

        // Other tests of this class add operations concurrently: ours appear newest first (by id: two made in the same
        // millisecond are ordered by their random bits, not by submit order), each once.
        var ours = seen.Where(created.Contains).ToList();
        Assert.Equal(created.OrderByDescending(id => id.ToString()), ours);
        Assert.Equal(seen.Count, seen.Distinct().Count());
        Assert.Equal(seen.OrderByDescending(id => id.ToString()), seen);
        Assert.True(since.GetArrayLength() <= 1);
    }

    [Fact]
    public async Task ListingFiltersByStatus()
    {
        var cancelled = await SubmitAsync();
        await PostAsync($"/v1/operations/{cancelled}/cancel");

        var page = await _client.FetchAsync("/v1/operations?status=cancelled&limit=100");

        var items = page.Json.GetProperty("items").EnumerateArray().ToList();
        Assert.Contains(items, item => item.GetProperty("id").GetGuid() == cancelled);
        Assert.All(items, item => Assert.Equal("cancelled", item.GetProperty("status").GetString()));
    }

    [Theory]
    [InlineData("limit=0", "limit")]
    [InlineData("limit=101", "limit")]
    [InlineData("status=done", "status")]
    [InlineData("createdAfter=yesterday", "createdAfter")]
    [InlineData("cursor=not-a-cursor", "cursor")]
    public async Task AnInvalidListQueryAnswers400NamingTheParameter(string query, string field)
    {
        var response = await _client.FetchAsync($"/v1/operations?{query}");

        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, "urn:pollingapi:problem:validation-failed", "/v1/operations");
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), problem.ToString());
    }

    [Fact]
    public async Task EveryOperationAnswerHasAStrongETagAndIfNoneMatchAnswers304()
    {
        var id = await SubmitAsync();
        var first = await _client.FetchAsync($"/v1/operations/{id}");
        string etag = first.Header("ETag")!;
        Assert.Matches("^\"[^\"]+\"$", etag);

        var unchanged = await _client.SendAsync(HttpMethod.Get, $"/v1/operations/{id}", null,
            request => request.Headers.TryAddWithoutValidation("If-None-Match", etag));
        Assert.Equal(HttpStatusCode.NotModified, unchanged.Status);
        Assert.Equal("", unchanged.Body);
        Assert.Equal(etag, unchanged.Header("ETag"));
        Assert.True(RetryAfter.Seconds(unchanged) >= 1);

        await PostAsync($"/v1/operations/{id}/cancel");
        var changed = await _client.SendAsync(HttpMethod.Get, $"/v1/operations/{id}", null,
            request => request.Headers.TryAddWithoutValidation("If-None-Match", etag));
        Assert.Equal(HttpStatusCode.OK, changed.Status);
        Assert.NotEqual(etag, changed.Header("ETag"));
        Assert.Equal("cancelled", changed.Json.GetProperty("status").GetString());
    }

    private async Task<Guid> SubmitAsync()
    {
        var response = await _client.SubmitSleepAsync("""{"durationMs": 1}""");
        Assert.Equal(HttpStatusCode.Accepted, response.Status);
        return response.Json.GetProperty("id").GetGuid();
    }

    private Task<ApiResponse> PostAsync(string path) => _client.SendAsync(HttpMethod.Post, path, null);

    private Task SetStatusAsync(Guid id, string status) => factory.Operations.FinishAsync(id, status);
}
