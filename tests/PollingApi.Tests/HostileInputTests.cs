using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>Input a careless or hostile client sends gets a 4xx problem, never a 500, and stores nothing.</summary>
public sealed class HostileInputTests(PollingApiFactory factory) : IClassFixture<PollingApiFactory>
{
    // A UUIDv7 whose time field is past the year 9999.
    private const string FarFutureId = "ffffffff-ffff-7fff-bfff-ffffffffffff";

    private readonly HttpClient _client = factory.CreateClient();

    [Theory]
    [InlineData("GET", "")]
    [InlineData("POST", "/cancel")]
    [InlineData("POST", "/retry")]
    [InlineData("DELETE", "")]
    public async Task AnIdWhoseTimeIsPastTheYear9999IsNotFound(string method, string suffix)
    {
        string path = $"/v1/operations/{FarFutureId}{suffix}";

        var response = await _client.SendAsync(new HttpMethod(method), path, null);

        ProblemAssert.IsProblem(response, HttpStatusCode.NotFound, "urn:pollingapi:problem:operation-not-found", path);
    }

    [Fact]
    public async Task AControlCharacterInAListFilterIsAValidationProblem()
    {
        var response = await _client.FetchAsync("/v1/operations?kind=%00");

        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, "urn:pollingapi:problem:validation-failed", "/v1/operations");
        Assert.Contains("control character", problem.GetProperty("errors").GetProperty("kind")[0].GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/v1/operations?status=%00")]
    [InlineData("/v1/operations?kind=a%00b")]
    [InlineData("/v1/operations?createdAfter=%00")]
    [InlineData("/v1/operations?createdBefore=2026-01-01T00:00:00Z%00")]
    [InlineData("/v1/operations?limit=%00")]
    [InlineData("/v1/operations?cursor=%00")]
    [InlineData("/v1/operations/0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50?wait=%00")]
    public async Task ANulInAnyQueryValueIsAValidationProblem(string pathAndQuery)
    {
        var response = await _client.FetchAsync(pathAndQuery);

        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, "urn:pollingapi:problem:validation-failed",
            pathAndQuery[..pathAndQuery.IndexOf('?', StringComparison.Ordinal)]);
        Assert.Equal(JsonValueKind.Object, problem.GetProperty("errors").ValueKind);
        Assert.DoesNotContain(factory.Logs.Entries, log => log.Level >= LogLevel.Error);
    }

    [Theory]
    [InlineData("""{"durationMs": 1, "durationMs": 600000}""")]
    [InlineData("""{"DurationMs": 1}""")]
    [InlineData("""{"DURATIONMS": 1}""")]
    public async Task APropertyGivenTwiceOrInAnotherCaseIsMalformedAndNothingIsStored(string body)
    {
        long before = await factory.Operations.CountAsync();

        var response = await _client.SubmitSleepAsync(body);

        ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, "urn:pollingapi:problem:malformed-json", PollingApiClient.SleepRoute);
        Assert.Equal(before, await factory.Operations.CountAsync());
    }

    [Theory]
    [InlineData("GET", "/v1/transfers", HttpStatusCode.MethodNotAllowed, "urn:pollingapi:problem:method-not-allowed")]
    [InlineData("GET", "/v1/nothing-here", HttpStatusCode.NotFound, "urn:pollingapi:problem:not-found")]
    [InlineData("GET", "/openapi/v2.json", HttpStatusCode.NotFound, "urn:pollingapi:problem:not-found")]
    [InlineData("GET", "/v1/operations/not-an-id", HttpStatusCode.BadRequest, "urn:pollingapi:problem:invalid-operation-id")]
    [InlineData("GET", "/v1/operations?limit=0", HttpStatusCode.BadRequest, "urn:pollingapi:problem:validation-failed")]
    public async Task AnErrorIsAProblemEvenForAClientThatAcceptsOnlyHtmlOrXml(string method, string path, HttpStatusCode status, string type)
    {
        foreach (string accept in new[] { "text/html", "application/xml", "text/plain" })
        {
            var response = await _client.SendAsync(new HttpMethod(method), path, null, request => request.Headers.Add("Accept", accept));

            var problem = ProblemAssert.IsProblem(response, status, type, path[..(path.IndexOf('?', StringComparison.Ordinal) is var q and >= 0 ? q : path.Length)]);
            if (type.EndsWith("validation-failed", StringComparison.Ordinal))
            {
                Assert.Equal(JsonValueKind.Object, problem.GetProperty("errors").ValueKind);
            }
        }

        Assert.DoesNotContain(factory.Logs.Entries, log => log.Level >= LogLevel.Error);
    }

    [Fact]
    public async Task EveryAnswerForbidsContentSniffing()
    {
        var ok = await _client.FetchAsync("/health/live");
        var problem = await _client.FetchAsync("/v1/operations/not-an-id");

        Assert.Equal("nosniff", ok.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.Equal("nosniff", problem.Headers.GetValues("X-Content-Type-Options").Single());
    }
}
