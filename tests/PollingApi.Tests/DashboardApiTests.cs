using System.Net;
using System.Text.Json;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>
/// What the dashboard reads and does through the public API: failures grouped and retried in bulk, the tenant filter of
/// the list, the stats' throughput; and how its static files are served.
/// </summary>
public sealed class DashboardApiTests(SecuredPollingApiFactory factory) : IClassFixture<SecuredPollingApiFactory>, IAsyncLifetime
{
    private const string PermanentFailure = "urn:pollingapi:problem:diagnostics-permanent-failure";
    private static readonly string[] Everything = ["operations:submit", "operations:read", "operations:manage"];
    private HttpClient _admin = null!;
    private HttpClient _alpha = null!;
    private HttpClient _beta = null!;

    public async Task InitializeAsync()
    {
        _admin = factory.CreateClient(await factory.CreateApiKeyAsync("operators", "admin"));
        _alpha = factory.CreateClient(await factory.CreateApiKeyAsync("alpha", Everything));
        _beta = factory.CreateClient(await factory.CreateApiKeyAsync("beta", Everything));
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task FailuresAreGroupedByKindAndErrorTypeLargestFirst()
    {
        string tenant = "groups-" + Guid.NewGuid().ToString("N")[..8];
        var client = factory.CreateClient(await factory.CreateApiKeyAsync(tenant, Everything));
        await FailAsync(client, """{"durationMs": 1, "failPermanently": true}""");
        await FailAsync(client, """{"durationMs": 1, "failPermanently": true}""");
        await FailAsync(client, """{"durationMs": 1, "failTimes": 100}""");
        var accounts = await client.SendAsync(HttpMethod.Post, "/v1/accounts", PollingApiClient.JsonBody("""{"currency": "EUR", "openingBalance": 0}"""),
            request => request.Headers.TryAddWithoutValidation("Prefer", "wait=30"));
        Assert.Equal(HttpStatusCode.OK, accounts.Status);

        var response = await _admin.FetchAsync($"/v1/admin/failures?tenant={tenant}");
        var forbidden = await client.FetchAsync("/v1/admin/failures");

        Assert.Equal(HttpStatusCode.OK, response.Status);
        var groups = response.Json.GetProperty("groups").EnumerateArray().ToList();
        Assert.Equal(2, groups.Count);
        Assert.Equal("diagnostics.sleep", groups[0].GetProperty("kind").GetString());
        Assert.Equal(PermanentFailure, groups[0].GetProperty("errorType").GetString());
        Assert.Equal(2, groups[0].GetProperty("count").GetInt64());
        Assert.Equal("The sleep was asked to fail permanently.", groups[0].GetProperty("title").GetString());
        Assert.Equal("urn:pollingapi:problem:attempts-exhausted", groups[1].GetProperty("errorType").GetString());
        Assert.Equal(1, groups[1].GetProperty("count").GetInt64());
        Assert.True(groups[0].GetProperty("lastFailedAt").GetDateTime() > TimeProvider.System.GetUtcNow().UtcDateTime.AddMinutes(-1));
        var ofKind = await _admin.FetchAsync($"/v1/admin/failures?tenant={tenant}&kind=accounts.open");
        Assert.Empty(ofKind.Json.GetProperty("groups").EnumerateArray());
        ProblemAssert.IsProblem(forbidden, HttpStatusCode.Forbidden, "urn:pollingapi:problem:forbidden", "/v1/admin/failures");
    }

    [Fact]
    public async Task RetryingAGroupPutsEveryMatchingFailureBackToPendingAndLeavesTheOthers()
    {
        string tenant = "retry-" + Guid.NewGuid().ToString("N")[..8];
        var client = factory.CreateClient(await factory.CreateApiKeyAsync(tenant, Everything));
        var permanent = new[]
        {
            await FailAsync(client, """{"durationMs": 1, "failPermanently": true}"""),
            await FailAsync(client, """{"durationMs": 1, "failPermanently": true}"""),
        };
        var exhausted = await FailAsync(client, """{"durationMs": 1, "failTimes": 100}""");
        var otherTenants = await FailAsync(_beta, """{"durationMs": 1, "failPermanently": true}""");
        var before = await factory.Operations.GetAsync(exhausted);

        var response = await _admin.SendAsync(HttpMethod.Post, "/v1/admin/failures/retry", PollingApiClient.JsonBody(
            $$"""{"kind": "diagnostics.sleep", "errorType": "{{PermanentFailure}}", "tenant": "{{tenant}}"}"""));

        Assert.Equal(HttpStatusCode.OK, response.Status);
        Assert.Equal(2, response.Json.GetProperty("retried").GetInt32());
        Assert.Equal(0, response.Json.GetProperty("refused").GetInt32());
        Assert.False(response.Json.GetProperty("more").GetBoolean());
        Assert.Equal(permanent.Max(), response.Json.GetProperty("after").GetGuid());
        foreach (var id in permanent)
        {
            // Back to pending with fresh attempts and run again: the sleep fails permanently again, a second attempt on record.
            int attempts = 0;
            await Eventually.WaitUntilAsync(async () =>
            {
                var history = await client.FetchAsync($"/v1/operations/{id}/attempts");
                attempts = history.Json.GetProperty("items").GetArrayLength();
                return attempts == 2 && (await factory.Operations.StatusOfAsync(id)) == "failed";
            }, TimeSpan.FromSeconds(30), () => $"{attempts} attempts");
        }

        Assert.Equal(before, await factory.Operations.GetAsync(exhausted));
        Assert.Equal("failed", (await factory.Operations.GetAsync(otherTenants))!.Status);
    }

    [Fact]
    public async Task ACommandsReplayRuleRefusesItsPartOfAGroupRetry()
    {
        var from = await OpenAccountAsync(_alpha, 10);
        var to = await OpenAccountAsync(_alpha, 0);
        var transfer = await _alpha.SendAsync(HttpMethod.Post, "/v1/transfers",
            PollingApiClient.JsonBody($$"""{"from": "{{from}}", "to": "{{to}}", "amount": 5000, "currency": "EUR"}"""),
            request => request.Headers.TryAddWithoutValidation("Prefer", "wait=30"));
        Assert.Equal("failed", transfer.Json.GetProperty("status").GetString());
        var id = transfer.Json.GetProperty("id").GetGuid();
        var before = await factory.Operations.GetAsync(id);

        var response = await _admin.SendAsync(HttpMethod.Post, "/v1/admin/failures/retry",
            PollingApiClient.JsonBody("""{"kind": "transfers.create", "tenant": "alpha"}"""));

        Assert.Equal(HttpStatusCode.OK, response.Status);
        Assert.Equal(0, response.Json.GetProperty("retried").GetInt32());
        Assert.Equal(1, response.Json.GetProperty("refused").GetInt32());
        Assert.Equal(before, await factory.Operations.GetAsync(id));
    }

    [Theory]
    [InlineData("""{"tenant": "not a tenant"}""", "tenant")]
    [InlineData("""{"kind": ""}""", "kind")]
    [InlineData("""{"errorType": ""}""", "errorType")]
    public async Task AnInvalidRetryFilterIsAValidationProblem(string body, string field)
    {
        var response = await _admin.SendAsync(HttpMethod.Post, "/v1/admin/failures/retry", PollingApiClient.JsonBody(body));

        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, "urn:pollingapi:problem:validation-failed", "/v1/admin/failures/retry");
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), response.ToString());
    }

    [Fact]
    public async Task AnAdminFiltersTheListByTenantAndOthersCanOnlyNameTheirOwn()
    {
        var ofAlpha = (await _alpha.SubmitSleepAsync("""{"durationMs": 1}""")).Json.GetProperty("id").GetGuid();
        var ofBeta = (await _beta.SubmitSleepAsync("""{"durationMs": 1}""")).Json.GetProperty("id").GetGuid();

        var adminAlpha = await _admin.FetchAsync("/v1/operations?tenant=alpha&limit=100");
        var alphaOwn = await _alpha.FetchAsync("/v1/operations?tenant=alpha&limit=100");
        var alphaOther = await _alpha.FetchAsync("/v1/operations?tenant=beta");
        var invalid = await _admin.FetchAsync("/v1/operations?tenant=a%20b");

        var items = adminAlpha.Json.GetProperty("items").EnumerateArray().ToList();
        Assert.Contains(items, item => item.GetProperty("id").GetGuid() == ofAlpha);
        Assert.DoesNotContain(items, item => item.GetProperty("id").GetGuid() == ofBeta);
        Assert.All(items, item => Assert.Equal("alpha", item.GetProperty("tenant").GetString()));
        Assert.Contains(alphaOwn.Json.GetProperty("items").EnumerateArray(), item => item.GetProperty("id").GetGuid() == ofAlpha);
        Assert.Equal(HttpStatusCode.OK, alphaOther.Status);
        Assert.Empty(alphaOther.Json.GetProperty("items").EnumerateArray());
        var problem = ProblemAssert.IsProblem(invalid, HttpStatusCode.BadRequest, "urn:pollingapi:problem:validation-failed", "/v1/operations");
        Assert.True(problem.GetProperty("errors").TryGetProperty("tenant", out _));
    }

    [Fact]
    public async Task TheStatsCountCompletionsPerThirtySecondsOfTheWindow()
    {
        await FailAsync(_alpha, """{"durationMs": 1, "failPermanently": true}""");
        var done = await _alpha.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody("""{"durationMs": 1}"""),
            request => request.Headers.TryAddWithoutValidation("Prefer", "wait=30"));
        Assert.Equal(HttpStatusCode.OK, done.Status);
        var table = await CompletionsInWindowAsync();

        JsonElement stats = default;
        await Eventually.WaitUntilAsync(async () =>
        {
            stats = (await _admin.FetchAsync("/v1/admin/stats")).Json;
            var buckets = stats.GetProperty("throughput").EnumerateArray().ToList();
            return buckets.Sum(b => b.GetProperty("succeeded").GetInt64()) >= table.Succeeded
                   && buckets.Sum(b => b.GetProperty("failed").GetInt64()) >= table.Failed;
        }, TimeSpan.FromSeconds(10), () => stats.ToString());

        var throughput = stats.GetProperty("throughput").EnumerateArray().ToList();
        Assert.Equal(10, throughput.Count);
        Assert.All(throughput, b => Assert.Equal(30, b.GetProperty("seconds").GetInt32()));
        var generatedAt = stats.GetProperty("generatedAt").GetDateTime();
        Assert.Equal(generatedAt.AddMinutes(-5), throughput[0].GetProperty("start").GetDateTime(), TimeSpan.FromMilliseconds(1));
        Assert.Equal(TimeSpan.FromSeconds(30), throughput[1].GetProperty("start").GetDateTime() - throughput[0].GetProperty("start").GetDateTime());
        Assert.True(throughput[^1].GetProperty("succeeded").GetInt64() + throughput[^2].GetProperty("succeeded").GetInt64() >= 1);
        Assert.True(throughput.Sum(b => b.GetProperty("failed").GetInt64()) >= 1);
    }

    [Fact]
    public async Task TheDashboardIsServedAsAFolderOfStaticFilesThatOnlyTalkToTheirOwnOrigin()
    {
        var client = factory.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { AllowAutoRedirect = false });

        var redirect = await client.FetchAsync("/dashboard");
        var page = await client.FetchAsync("/dashboard/");
        var script = await client.FetchAsync("/dashboard/dashboard.js");
        var styles = await client.FetchAsync("/dashboard/dashboard.css");
        var missing = await client.FetchAsync("/dashboard/secrets.json");

        Assert.Equal(HttpStatusCode.Redirect, redirect.Status);
        Assert.Equal("dashboard/", redirect.Headers.Location?.OriginalString);
        Assert.Equal(HttpStatusCode.OK, page.Status);
        Assert.Equal("text/html", page.MediaType);
        Assert.Contains("<script type=\"module\" src=\"dashboard.js\"></script>", page.Body, StringComparison.Ordinal);
        Assert.DoesNotContain("http", page.Body.Replace("http-equiv", "", StringComparison.Ordinal), StringComparison.OrdinalIgnoreCase);
        string csp = page.Header("Content-Security-Policy")!;
        Assert.Contains("default-src 'none'", csp, StringComparison.Ordinal);
        Assert.Contains("script-src 'self'", csp, StringComparison.Ordinal);
        Assert.Contains("connect-src 'self'", csp, StringComparison.Ordinal);
        Assert.Contains("frame-ancestors 'none'", csp, StringComparison.Ordinal);
        Assert.Equal("no-cache", page.Header("Cache-Control"));
        Assert.Equal("text/javascript", script.MediaType);
        Assert.Contains("X-Api-Key", script.Body, StringComparison.Ordinal);
        Assert.DoesNotContain("innerHTML", script.Body, StringComparison.Ordinal);
        Assert.Equal("text/css", styles.MediaType);
        ProblemAssert.IsProblem(missing, HttpStatusCode.NotFound, "urn:pollingapi:problem:not-found", "/dashboard/secrets.json");

        var revalidated = await client.SendAsync(HttpMethod.Get, "/dashboard/dashboard.js", null,
            request => request.Headers.TryAddWithoutValidation("If-None-Match", script.Headers.ETag!.Tag));
        Assert.Equal(HttpStatusCode.NotModified, revalidated.Status);
        Assert.Empty(revalidated.Body);
    }

    private static async Task<Guid> FailAsync(HttpClient client, string json)
    {
        var submitted = await client.SubmitSleepAsync(json);
        var id = submitted.Json.GetProperty("id").GetGuid();
        var finished = await client.PollUntilDoneAsync(new Uri($"/v1/operations/{id}", UriKind.Relative), TimeSpan.FromSeconds(30));
        Assert.Equal("failed", finished.Json.GetProperty("status").GetString());
        return id;
    }

    private static async Task<Guid> OpenAccountAsync(HttpClient client, long balance)
    {
        var response = await client.SendAsync(HttpMethod.Post, "/v1/accounts",
            PollingApiClient.JsonBody($$"""{"currency": "EUR", "openingBalance": {{balance}}}"""),
            request => request.Headers.TryAddWithoutValidation("Prefer", "wait=30"));
        Assert.Equal(HttpStatusCode.OK, response.Status);
        return response.Json.GetProperty("result").GetProperty("accountId").GetGuid();
    }

    private async Task<(long Succeeded, long Failed)> CompletionsInWindowAsync()
    {
        await using var connection = new Npgsql.NpgsqlConnection(factory.DatabaseConnectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand("""
            SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed')
            FROM operations WHERE completed_at > now() - interval '5 minutes'
            """, connection);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }
}
