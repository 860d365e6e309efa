using System.Net;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>Polling an operation that no worker picks up, and the error answers of the API's routes.</summary>
public sealed class OperationStatusTests(ApiOnlyPollingApiFactory factory) : IClassFixture<ApiOnlyPollingApiFactory>
{
    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task PollingAPendingOperationAnswers202WithRetryAfterAndStatusPending()
    {
        var submitted = await _client.SubmitSleepAsync("""{"durationMs": 50}""");
        Assert.True(submitted.Status == HttpStatusCode.Accepted, submitted.ToString());
        var location = submitted.Headers.Location!;

        var response = await _client.FetchAsync(location);

        Assert.True(response.Status == HttpStatusCode.Accepted, response.ToString());
        Assert.Equal("application/json", response.MediaType);
        Assert.True(RetryAfter.Seconds(response) >= 1);
        var operation = response.Json;
        Assert.Equal(submitted.Json.GetProperty("id").GetString(), operation.GetProperty("id").GetString());
        Assert.Equal("pending", operation.GetProperty("status").GetString());
        Assert.False(operation.GetProperty("done").GetBoolean());
        Assert.Equal(0, operation.GetProperty("attempts").GetInt32());
        Assert.Equal(location.ToString(), operation.GetProperty("links").GetProperty("self").GetString());
        Assert.Equal("pending", await factory.Operations.StatusOfAsync(operation.GetProperty("id").GetGuid()));
    }

    [Theory]
    [InlineData("not-a-uuid")]
    [InlineData("0193a5e2-7c4b-7d2e-9f00")]
    [InlineData("0193a5e27c4b7d2e9f005b1c2d3e4f50")]
    public async Task AMalformedOperationIdAnswers400Problem(string id)
    {
        var response = await _client.FetchAsync($"/v1/operations/{id}");

        ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, "urn:pollingapi:problem:invalid-operation-id", $"/v1/operations/{id}");
    }

    [Fact]
    public async Task AnUnknownOperationIdAnswers404Problem()
    {
        var id = Guid.CreateVersion7();

        var response = await _client.FetchAsync($"/v1/operations/{id}");

        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.NotFound, "urn:pollingapi:problem:operation-not-found",
            $"/v1/operations/{id}");
        Assert.Contains(id.ToString(), problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AProblemsInstanceIsAUriReferenceAsRfc9457Requires()
    {
        string path = $"/v1/operations/{Guid.CreateVersion7()}";

        var response = await _client.FetchAsync(path);

        // RFC 9457 section 3.1.5: "instance" is a URI reference; clients that bind it to a URI type fail on anything else.
        string instance = ProblemAssert.IsProblem(response, HttpStatusCode.NotFound, "urn:pollingapi:problem:operation-not-found", path)
            .GetProperty("instance").GetString()!;
        Assert.True(Uri.IsWellFormedUriString(instance, UriKind.RelativeOrAbsolute), $"'{instance}' is not a URI reference.");
        Assert.EndsWith(path, instance, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnUnknownRouteAnswers404Problem()
    {
        var response = await _client.FetchAsync("/v1/no-such-thing");

        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.NotFound, "urn:pollingapi:problem:not-found", "/v1/no-such-thing");
        Assert.Contains("/v1/no-such-thing", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AWrongMethodAnswers405ProblemWithAllow()
    {
        var response = await _client.SendAsync(HttpMethod.Delete, PollingApiClient.SleepRoute, null);

        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.MethodNotAllowed, "urn:pollingapi:problem:method-not-allowed",
            PollingApiClient.SleepRoute);
        Assert.Contains("DELETE", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal("POST", response.Header("Allow"));
    }
}
