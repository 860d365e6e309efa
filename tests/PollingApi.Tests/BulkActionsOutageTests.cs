using System.Globalization;
using System.Net;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>
/// A bulk retry or cancel that loses the database part-way says what it did: the one operation whose change may have
/// been applied, or how many were changed before the database went away; sent again, it does only what is left.
/// </summary>
public sealed class BulkActionsOutageTests(ProxiedAdminPollingApiFactory factory) : IClassFixture<ProxiedAdminPollingApiFactory>
{
    private const string RetryRoute = "/v1/admin/operations/retry";
    private const string CancelRoute = "/v1/admin/operations/cancel";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);
    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task ARetryWhoseCommitOutcomeCannotBeSettledStopsAtThatOperationAndNamesIt()
    {
        Guid[] ids = [.. new[] { await CancelledAsync(), await CancelledAsync(), await CancelledAsync() }.Order()];
        // The anonymous callers' tenant: the other test's operations are another tenant's.
        string body = """{"tenant": "dev", "status": "cancelled"}""";
        var broken = factory.Proxy.ArmFault(TcpProxy.Containing(ids[1], "SET status = 'pending', attempts = 0"), FaultMoment.AfterTheCommit,
            factory.Proxy.SwitchOff);
        ApiResponse response;
        try
        {
            response = await _client.SendAsync(HttpMethod.Post, RetryRoute, PollingApiClient.JsonBody(body));
        }
        finally
        {
            factory.Proxy.SwitchOn();
        }

        Assert.True(broken.IsCompleted, "The proxy never saw the retry of the second operation.");
        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.ServiceUnavailable, "urn:pollingapi:problem:commit-outcome-unknown", RetryRoute);
        Assert.Equal(ids[1], problem.GetProperty("operationId").GetGuid());
        Assert.EndsWith($"/v1/operations/{ids[1]}", response.Headers.Location!.ToString(), StringComparison.Ordinal);
        Assert.Contains("1 operations before it were changed", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.True(RetryAfter.Seconds(response) >= 1);
        Assert.NotEqual("cancelled", await factory.Operations.StatusOfAsync(ids[0]));
        Assert.NotEqual("cancelled", await factory.Operations.StatusOfAsync(ids[1]));
        Assert.Equal("cancelled", await factory.Operations.StatusOfAsync(ids[2]));

        var again = await _client.SendAsync(HttpMethod.Post, RetryRoute, PollingApiClient.JsonBody(body));

        JsonAssert.Equivalent($$"""{"matched": 1, "changed": 1, "refused": 0, "more": false, "after": "{{ids[2]}}"}""", again.Json);
        foreach (var id in ids)
        {
            await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(id) == "succeeded", Deadline);
        }
    }

    [Fact]
    public async Task ACancelThatLosesTheDatabaseBetweenBatchesSaysHowManyItChanged()
    {
        string tenant = "outage-" + Guid.NewGuid().ToString("N")[..12];
        var ids = await factory.Operations.InsertScheduledAsync(tenant, 501);
        string body = $$"""{"tenant": "{{tenant}}"}""";
        // The second batch's read of ids, which continues after the first batch's last id.
        var broken = factory.Proxy.ArmFault(TcpProxy.Containing(ids[499], "AND NOT cancel_requested AND"), FaultMoment.BeforeTheServer,
            factory.Proxy.SwitchOff);
        ApiResponse response;
        try
        {
            response = await _client.SendAsync(HttpMethod.Post, CancelRoute, PollingApiClient.JsonBody(body));
        }
        finally
        {
            factory.Proxy.SwitchOn();
        }

        Assert.True(broken.IsCompleted, "The proxy never saw the second batch's read.");
        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.ServiceUnavailable, "urn:pollingapi:problem:database-unavailable", CancelRoute);
        Assert.Equal(500, problem.GetProperty("changed").GetInt32());
        Assert.True(RetryAfter.Seconds(response) >= 1);
        Assert.Equal(500, await factory.Operations.CountAsync(tenant, "cancelled"));
        Assert.Equal("pending", await factory.Operations.StatusOfAsync(ids[500]));

        var again = await _client.SendAsync(HttpMethod.Post, CancelRoute, PollingApiClient.JsonBody(body));

        JsonAssert.Equivalent($$"""{"matched": 1, "changed": 1, "refused": 0, "more": false, "after": "{{ids[500]}}"}""", again.Json);
        Assert.Equal(501, await factory.Operations.CountAsync(tenant, "cancelled"));
    }

    /// <summary>A sleep scheduled an hour ahead and cancelled before it ran; retried, it runs at once and succeeds.</summary>
    private async Task<Guid> CancelledAsync()
    {
        string at = TimeProvider.System.GetUtcNow().AddHours(1).ToString("yyyy-MM-dd'T'HH:mm:ssK", CultureInfo.InvariantCulture);
        var submitted = await _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody("""{"durationMs": 1}"""),
            request => request.Headers.TryAddWithoutValidation("Operation-Scheduled-At", at));
        Assert.True(submitted.Status == HttpStatusCode.Accepted, submitted.ToString());
        var id = submitted.Json.GetProperty("id").GetGuid();
        var cancel = await _client.SendAsync(HttpMethod.Post, $"/v1/operations/{id}/cancel", null);
        Assert.Equal("cancelled", cancel.Json.GetProperty("status").GetString());
        return id;
    }
}
