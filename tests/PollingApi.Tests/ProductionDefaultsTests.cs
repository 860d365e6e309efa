using System.Net;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>
/// The node as deployed (Production, appsettings.json only): no anonymous callers, no diagnostics commands, only the
/// configured host names.
/// </summary>
public sealed class ProductionDefaultsTests(ProductionPollingApiFactory factory) : IClassFixture<ProductionPollingApiFactory>
{
    [Fact]
    public async Task ProductionRefusesAnonymousCallers()
    {
        var response = await factory.CreateClient().FetchAsync("/v1/operations");

        ProblemAssert.IsProblem(response, HttpStatusCode.Unauthorized, "urn:pollingapi:problem:unauthorized", "/v1/operations");
    }

    [Fact]
    public async Task TheDiagnosticsCommandsAreOffInProduction()
    {
        var client = factory.CreateClient(await factory.CreateApiKeyAsync("tenant-p", "operations:submit", "operations:read"));

        var sleep = await client.SubmitSleepAsync("""{"durationMs": 1}""");
        var document = await client.FetchAsync("/openapi/v1.json");

        ProblemAssert.IsProblem(sleep, HttpStatusCode.NotFound, "urn:pollingapi:problem:not-found", PollingApiClient.SleepRoute);
        Assert.DoesNotContain("/v1/diagnostics/sleep", document.Body, StringComparison.Ordinal);
        Assert.Contains("/v1/transfers", document.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AForgedHostNeverReachesALocation()
    {
        var client = factory.CreateClient(await factory.CreateApiKeyAsync("tenant-p", "operations:submit"));
        long before = await factory.Operations.CountAsync();

        var forged = await client.SendAsync(HttpMethod.Post, "/v1/accounts", PollingApiClient.JsonBody("""{"currency": "EUR"}"""),
            request => request.Headers.Host = "attacker.example");
        var honest = await client.SendAsync(HttpMethod.Post, "/v1/accounts", PollingApiClient.JsonBody("""{"currency": "EUR"}"""));

        ProblemAssert.IsProblem(forged, HttpStatusCode.BadRequest, "urn:pollingapi:problem:invalid-host", "/v1/accounts");
        Assert.Equal(HttpStatusCode.Accepted, honest.Status);
        Assert.StartsWith("http://localhost/v1/operations/", honest.Header("Location"), StringComparison.Ordinal);
        Assert.Equal(before + 1, await factory.Operations.CountAsync());
    }
}
