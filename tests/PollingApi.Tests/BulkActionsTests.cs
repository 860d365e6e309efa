using System.Globalization;
using System.Net;
using System.Text.Json;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>
/// <c>POST /v1/admin/operations/retry</c> and <c>/cancel</c>: every operation that matches a filter, each through the
/// same lifecycle step as the single-operation endpoints. Each test works in a tenant of its own, so the other tests'
/// operations never match.
/// </summary>
public sealed class BulkActionsTests(SecuredPollingApiFactory factory) : IClassFixture<SecuredPollingApiFactory>, IAsyncLifetime
{
    private const string RetryRoute = "/v1/admin/operations/retry";
    private const string CancelRoute = "/v1/admin/operations/cancel";
    private const string PermanentFailure = "urn:pollingapi:problem:diagnostics-permanent-failure";
    private static readonly string[] Everything = ["operations:submit", "operations:read", "operations:manage"];
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);
    private HttpClient _admin = null!;

    public async Task InitializeAsync() => _admin = factory.CreateClient(await factory.CreateApiKeyAsync("operators", "admin"));

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task RetryingByKindAndErrorTypePutsExactlyTheMatchingFailuresBackToPending()
    {
        var (tenant, client) = await NewTenantAsync();
        Guid[] permanent = [await FailAsync(client, """{"durationMs": 1, "failPermanently": true}"""),
                            await FailAsync(client, """{"durationMs": 1, "failPermanently": true}""")];
        var exhausted = await FailAsync(client, """{"durationMs": 1, "failTimes": 100}""");
        var cancelled = await CancelledAsync(client);
        var transfer = await RefusedTransferAsync(client);
        var untouched = await SnapshotAsync(exhausted, cancelled, transfer);

        var response = await BulkAsync(RetryRoute, $$"""{"kind": "diagnostics.sleep", "errorType": "{{PermanentFailure}}", "tenant": "{{tenant}}"}""");

        JsonAssert.Equivalent($$"""{"matched": 2, "changed": 2, "refused": 0, "more": false, "after": "{{permanent.Max()}}"}""", response.Json);
        foreach (var id in permanent)
        {
            // Back to pending with fresh attempts and run again: the sleep fails permanently again, a second attempt on record.
            await WaitForAttemptsAsync(client, id, 2);
            var row = await factory.Operations.GetAsync(id);
            Assert.Equal(("failed", 1), (row.Status, row.Attempts));
        }

        Assert.Equal(untouched, await SnapshotAsync(exhausted, cancelled, transfer));
    }

    [Fact]
    public async Task RetryingOneTenantsOperationsLeavesEveryOtherTenantsAlone()
    {
        var (tenant, client) = await NewTenantAsync();
        var (_, other) = await NewTenantAsync();
        var own = await CancelledAsync(client);
        var others = new[] { await CancelledAsync(other), await FailAsync(other, """{"durationMs": 1, "failPermanently": true}""") };
        var untouched = await SnapshotAsync(others);

        var response = await BulkAsync(RetryRoute, $$"""{"tenant": "{{tenant}}"}""");

        JsonAssert.Equivalent($$"""{"matched": 1, "changed": 1, "refused": 0, "more": false, "after": "{{own}}"}""", response.Json);
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(own) == "succeeded", Deadline);
        Assert.Equal(1, (await factory.Operations.GetAsync(own)).Attempts);
        Assert.Equal(untouched, await SnapshotAsync(others));
    }

    [Fact]
    public async Task TheCreatedRangeMatchesOnlyOperationsCreatedStrictlyBetweenItsEnds()
    {
        var (tenant, client) = await NewTenantAsync();
        var first = await CancelledAsync(client);
        var middle = await CancelledAsync(client);
        var last = await CancelledAsync(client);
        string after = Rfc3339((await factory.Operations.GetAsync(first)).CreatedAt);
        string before = Rfc3339((await factory.Operations.GetAsync(last)).CreatedAt);
        var untouched = await SnapshotAsync(first, last);

        var response = await BulkAsync(RetryRoute,
            $$"""{"tenant": "{{tenant}}", "status": "cancelled", "createdAfter": "{{after}}", "createdBefore": "{{before}}"}""");

        JsonAssert.Equivalent($$"""{"matched": 1, "changed": 1, "refused": 0, "more": false, "after": "{{middle}}"}""", response.Json);
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(middle) == "succeeded", Deadline);
        Assert.Equal(untouched, await SnapshotAsync(first, last));
    }

    [Fact]
    public async Task AnOperationWhoseCommandRefusesTheReplayIsMatchedButNotChanged()
    {
        var (tenant, client) = await NewTenantAsync();
        var transfer = await RefusedTransferAsync(client);
        var before = await factory.Operations.GetAsync(transfer);

        var response = await BulkAsync(RetryRoute, $$"""{"tenant": "{{tenant}}", "kind": "transfers.create", "status": "failed"}""");

        JsonAssert.Equivalent($$"""{"matched": 1, "changed": 0, "refused": 1, "more": false, "after": "{{transfer}}"}""", response.Json);
        Assert.Equal(before, await factory.Operations.GetAsync(transfer));
    }

    [Fact]
    public async Task RepeatingARetryMatchesOnlyWhatIsLeftAndChangesNothingTheFirstChanged()
    {
        var (tenant, client) = await NewTenantAsync();
        var cancelled = await CancelledAsync(client);
        var transfer = await RefusedTransferAsync(client);
        string body = $$"""{"tenant": "{{tenant}}"}""";

        var first = await BulkAsync(RetryRoute, body);
        var second = await BulkAsync(RetryRoute, body);

        Assert.Equal((2, 1, 1), Counts(first));
        Assert.Equal((1, 0, 1), Counts(second));
        Assert.Equal(transfer, second.Json.GetProperty("after").GetGuid());
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(cancelled) == "succeeded", Deadline);
        var third = await BulkAsync(RetryRoute, body);
        Assert.Equal((1, 0, 1), Counts(third));
        Assert.Equal("failed", await factory.Operations.StatusOfAsync(transfer));
    }

    [Fact]
    public async Task CancellingCancelsPendingOperationsAtOnceAndStopsRunningOnes()
    {
        var (tenant, client) = await NewTenantAsync();
        var pending = await ScheduledAsync(client);
        var running = await RunningAsync(client);
        var succeeded = await SucceededAsync(client);
        var untouched = await SnapshotAsync(succeeded);

        var response = await BulkAsync(CancelRoute, $$"""{"tenant": "{{tenant}}"}""");

        Assert.Equal((2, 2, 0), Counts(response));
        Assert.False(response.Json.GetProperty("more").GetBoolean());
        Assert.Equal(new[] { pending, running }.Max(), response.Json.GetProperty("after").GetGuid());
        Assert.Equal("cancelled", await factory.Operations.StatusOfAsync(pending));
        Assert.True(await factory.Operations.CancelRequestedAsync(running));
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(running) == "cancelled", Deadline);
        Assert.Contains("operation-cancelled", (await factory.Operations.GetAsync(running)).Error, StringComparison.Ordinal);
        Assert.Equal(untouched, await SnapshotAsync(succeeded));

        var again = await BulkAsync(CancelRoute, $$"""{"tenant": "{{tenant}}"}""");
        Assert.Equal((0, 0, 0), Counts(again));
    }

    [Fact]
    public async Task ACancelNarrowedToPendingLeavesRunningOperationsRunning()
    {
        var (tenant, client) = await NewTenantAsync();
        var pending = await ScheduledAsync(client);
        var running = await RunningAsync(client);

        var response = await BulkAsync(CancelRoute, $$"""{"tenant": "{{tenant}}", "status": "pending", "kind": "diagnostics.sleep"}""");

        JsonAssert.Equivalent($$"""{"matched": 1, "changed": 1, "refused": 0, "more": false, "after": "{{pending}}"}""", response.Json);
        Assert.Equal("cancelled", await factory.Operations.StatusOfAsync(pending));
        Assert.Equal("running", await factory.Operations.StatusOfAsync(running));
        Assert.False(await factory.Operations.CancelRequestedAsync(running));
        await client.SendAsync(HttpMethod.Post, $"/v1/operations/{running}/cancel", null);
    }

    [Fact]
    public async Task ACancelGoesThroughEveryBatchOfAFilterThatMatchesMoreThanOneBatch()
    {
        var (tenant, _) = await NewTenantAsync();
        var ids = await factory.Operations.InsertScheduledAsync(tenant, 1_234);

        var response = await BulkAsync(CancelRoute, $$"""{"tenant": "{{tenant}}", "status": "pending"}""");

        JsonAssert.Equivalent($$"""{"matched": 1234, "changed": 1234, "refused": 0, "more": false, "after": "{{ids[^1]}}"}""", response.Json);
        Assert.Equal(1_234, await factory.Operations.CountAsync(tenant, "cancelled"));
        Assert.Equal(0, await factory.Operations.CountAsync(tenant, "pending"));
    }

    [Theory]
    [InlineData(RetryRoute, """{"status": "pending"}""", "status")]
    [InlineData(RetryRoute, """{"status": "lost"}""", "status")]
    [InlineData(RetryRoute, """{"kind": ""}""", "kind")]
    [InlineData(RetryRoute, """{"tenant": "not a tenant"}""", "tenant")]
    [InlineData(RetryRoute, """{"errorType": ""}""", "errorType")]
    [InlineData(RetryRoute, """{"createdAfter": "yesterday"}""", "createdAfter")]
    [InlineData(RetryRoute, """{"createdBefore": "2026-13-01T00:00:00Z"}""", "createdBefore")]
    [InlineData(CancelRoute, """{"status": "failed"}""", "status")]
    [InlineData(CancelRoute, """{"errorType": "urn:pollingapi:problem:attempts-exhausted"}""", "errorType")]
    [InlineData(CancelRoute, """{"createdAfter": "soon"}""", "createdAfter")]
    public async Task AnInvalidFilterIsAValidationProblemNamingTheField(string route, string body, string field)
    {
        var response = await BulkAsync(route, body);

        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, "urn:pollingapi:problem:validation-failed", route);
        var errors = problem.GetProperty("errors");
        Assert.Equal(new[] { field }, errors.EnumerateObject().Select(e => e.Name));
        Assert.Contains($"'{field}'", errors.GetProperty(field)[0].GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"tenat": "TENANT"}""")]
    [InlineData("""{"Tenant": "TENANT"}""")]
    [InlineData("""{"tenant": "TENANT", "kind": 5}""")]
    [InlineData("""{"tenant": "TENANT",""")]
    [InlineData("""["TENANT"]""")]
    [InlineData("")]
    public async Task ABodyThatIsNotExactlyAFilterIsRefusedRatherThanMatchingEverything(string body)
    {
        var (tenant, client) = await NewTenantAsync();
        var pending = await ScheduledAsync(client);

        var response = await BulkAsync(CancelRoute, body.Replace("TENANT", tenant, StringComparison.Ordinal));

        ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, "urn:pollingapi:problem:malformed-json", CancelRoute);
        Assert.Equal("pending", await factory.Operations.StatusOfAsync(pending));
    }

    [Fact]
    public async Task ACallerWithoutTheAdminScopeIsForbiddenAndChangesNothing()
    {
        var (tenant, client) = await NewTenantAsync();
        var pending = await ScheduledAsync(client);
        var cancelled = await CancelledAsync(client);
        string body = $$"""{"tenant": "{{tenant}}"}""";

        var cancel = await client.SendAsync(HttpMethod.Post, CancelRoute, PollingApiClient.JsonBody(body));
        var retry = await client.SendAsync(HttpMethod.Post, RetryRoute, PollingApiClient.JsonBody(body));

        ProblemAssert.IsProblem(cancel, HttpStatusCode.Forbidden, "urn:pollingapi:problem:forbidden", CancelRoute);
        ProblemAssert.IsProblem(retry, HttpStatusCode.Forbidden, "urn:pollingapi:problem:forbidden", RetryRoute);
        Assert.Equal("pending", await factory.Operations.StatusOfAsync(pending));
        Assert.Equal("cancelled", await factory.Operations.StatusOfAsync(cancelled));
    }

    private async Task<(string Tenant, HttpClient Client)> NewTenantAsync()
    {
        string tenant = "bulk-" + Guid.NewGuid().ToString("N")[..12];
        return (tenant, factory.CreateClient(await factory.CreateApiKeyAsync(tenant, Everything)));
    }

    private Task<ApiResponse> BulkAsync(string route, string body) =>
        _admin.SendAsync(HttpMethod.Post, route, PollingApiClient.JsonBody(body));

    private static (int Matched, int Changed, int Refused) Counts(ApiResponse response)
    {
        Assert.True(response.Status == HttpStatusCode.OK, response.ToString());
        return (response.Json.GetProperty("matched").GetInt32(), response.Json.GetProperty("changed").GetInt32(),
            response.Json.GetProperty("refused").GetInt32());
    }

    private async Task<StoredOperation[]> SnapshotAsync(params Guid[] ids)
    {
        var rows = new StoredOperation[ids.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            rows[i] = await factory.Operations.GetAsync(ids[i]);
        }

        return rows;
    }

    private static string Rfc3339(DateTime utc) => utc.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);

    private static async Task<Guid> FailAsync(HttpClient client, string json)
    {
        var submitted = await client.SubmitSleepAsync(json);
        var id = submitted.Json.GetProperty("id").GetGuid();
        var finished = await client.PollUntilDoneAsync(new Uri($"/v1/operations/{id}", UriKind.Relative), Deadline);
        Assert.Equal("failed", finished.Json.GetProperty("status").GetString());
        return id;
    }

    private static async Task<Guid> SucceededAsync(HttpClient client)
    {
        var response = await client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody("""{"durationMs": 1}"""),
            request => request.Headers.TryAddWithoutValidation("Prefer", "wait=30"));
        Assert.Equal("succeeded", response.Json.GetProperty("status").GetString());
        return response.Json.GetProperty("id").GetGuid();
    }

    /// <summary>A pending sleep that no worker starts for an hour.</summary>
    private static async Task<Guid> ScheduledAsync(HttpClient client)
    {
        string at = TimeProvider.System.GetUtcNow().AddHours(1).ToString("yyyy-MM-dd'T'HH:mm:ssK", CultureInfo.InvariantCulture);
        var response = await client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody("""{"durationMs": 1}"""),
            request => request.Headers.TryAddWithoutValidation("Operation-Scheduled-At", at));
        Assert.True(response.Status == HttpStatusCode.Accepted, response.ToString());
        return response.Json.GetProperty("id").GetGuid();
    }

    /// <summary>A sleep cancelled before it ran; retried, it runs at once and succeeds.</summary>
    private static async Task<Guid> CancelledAsync(HttpClient client)
    {
        var id = await ScheduledAsync(client);
        var cancel = await client.SendAsync(HttpMethod.Post, $"/v1/operations/{id}/cancel", null);
        Assert.Equal("cancelled", cancel.Json.GetProperty("status").GetString());
        return id;
    }

    private async Task<Guid> RunningAsync(HttpClient client)
    {
        var submitted = await client.SubmitSleepAsync("""{"durationMs": 60000}""");
        var id = submitted.Json.GetProperty("id").GetGuid();
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(id) == "running", Deadline);
        return id;
    }

    /// <summary>A transfer that failed for insufficient funds: its command never allows a replay.</summary>
    private static async Task<Guid> RefusedTransferAsync(HttpClient client)
    {
        var from = await OpenAccountAsync(client);
        var to = await OpenAccountAsync(client);
        var transfer = await client.SendAsync(HttpMethod.Post, "/v1/transfers",
            PollingApiClient.JsonBody($$"""{"from": "{{from}}", "to": "{{to}}", "amount": 5000, "currency": "EUR"}"""),
            request => request.Headers.TryAddWithoutValidation("Prefer", "wait=30"));
        Assert.Equal("urn:pollingapi:problem:insufficient-funds", transfer.Json.GetProperty("error").GetProperty("type").GetString());
        return transfer.Json.GetProperty("id").GetGuid();
    }

    private static async Task<Guid> OpenAccountAsync(HttpClient client)
    {
        var response = await client.SendAsync(HttpMethod.Post, "/v1/accounts", PollingApiClient.JsonBody("""{"currency": "EUR", "openingBalance": 0}"""),
            request => request.Headers.TryAddWithoutValidation("Prefer", "wait=30"));
        Assert.True(response.Status == HttpStatusCode.OK, response.ToString());
        return response.Json.GetProperty("result").GetProperty("accountId").GetGuid();
    }

    private static async Task WaitForAttemptsAsync(HttpClient client, Guid id, int count)
    {
        JsonElement history = default;
        await Eventually.WaitUntilAsync(async () =>
        {
            history = (await client.FetchAsync($"/v1/operations/{id}/attempts")).Json.GetProperty("items");
            return history.GetArrayLength() == count && history[count - 1].GetProperty("outcome").GetString() != "running";
        }, Deadline, () => history.ToString());
    }
}
