using System.Net;
using System.Text;
using System.Text.Json;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>Submitting a command: what the caller gets and what is stored. No worker runs, so operations stay pending.</summary>
public sealed class SubmitCommandTests(ApiOnlyPollingApiFactory factory) : IClassFixture<ApiOnlyPollingApiFactory>
{
    private const int MaxRequestBodyBytes = 65536;

    private static readonly string[] UnsupportedMediaTypeTypes = ["urn:pollingapi:problem:unsupported-media-type"];

    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task SubmittingASleepAnswers202WithLocationOperationLocationAndRetryAfter()
    {
        var response = await _client.SubmitSleepAsync("""{"durationMs": 50}""");

        Assert.True(response.Status == HttpStatusCode.Accepted, response.ToString());
        Assert.Equal("application/json", response.MediaType);
        var location = response.Headers.Location;
        Assert.NotNull(location);
        Assert.True(location.IsAbsoluteUri, $"Location must be absolute, not '{location}'.");
        string id = response.Json.GetProperty("id").GetString()!;
        Assert.Equal($"http://localhost/v1/operations/{id}", location.ToString());
        Assert.Equal(location.ToString(), response.Header("Operation-Location"));
        Assert.True(RetryAfter.Seconds(response) >= 1);
    }

    [Fact]
    public async Task SubmittingASleepReturnsThePendingOperationWithAUuidV7Id()
    {
        var response = await _client.SubmitSleepAsync("""{"durationMs": 50}""");

        Assert.True(response.Status == HttpStatusCode.Accepted, response.ToString());
        var operation = response.Json;
        string idText = operation.GetProperty("id").GetString()!;
        var id = Guid.ParseExact(idText, "D");
        Assert.Equal('7', idText[14]);
        Assert.Contains(idText[19], "89ab");
        Assert.Equal("diagnostics.sleep", operation.GetProperty("kind").GetString());
        Assert.Equal("pending", operation.GetProperty("status").GetString());
        Assert.False(operation.GetProperty("done").GetBoolean());
        Assert.Equal(0, operation.GetProperty("attempts").GetInt32());
        Assert.Equal(5, operation.GetProperty("maxAttempts").GetInt32());
        Assert.Equal(JsonValueKind.Null, operation.GetProperty("result").ValueKind);
        Assert.Equal(JsonValueKind.Null, operation.GetProperty("error").ValueKind);
        Assert.Equal(JsonValueKind.Null, operation.GetProperty("completedAt").ValueKind);
        Assert.Equal(JsonValueKind.Null, operation.GetProperty("nextAttemptAt").ValueKind);
        Assert.Equal(response.Headers.Location!.ToString(), operation.GetProperty("links").GetProperty("self").GetString());
        Assert.False(operation.TryGetProperty("payload", out _), "The submitted payload is not echoed back.");

        // The UUIDv7 timestamp is the moment the operation was accepted.
        var createdAt = operation.GetProperty("createdAt").GetDateTimeOffset();
        Assert.Equal(operation.GetProperty("updatedAt").GetDateTimeOffset(), createdAt);
        byte[] bytes = id.ToByteArray(bigEndian: true);
        long unixMs = ((long)bytes[0] << 40) | ((long)bytes[1] << 32) | ((long)bytes[2] << 24) | ((long)bytes[3] << 16)
                      | ((long)bytes[4] << 8) | bytes[5];
        Assert.Equal(createdAt.ToUnixTimeMilliseconds(), unixMs);
    }

    [Fact]
    public async Task SubmittingASleepStoresAPendingRowWithTheCompletePayload()
    {
        var response = await _client.SubmitSleepAsync("""{"durationMs": 50}""");

        Assert.True(response.Status == HttpStatusCode.Accepted, response.ToString());
        var id = response.Json.GetProperty("id").GetGuid();
        var row = await factory.Operations.GetAsync(id);
        Assert.Equal("pending", row.Status);
        Assert.Equal("diagnostics.sleep", row.Kind);
        Assert.Equal("dev", row.Owner);
        Assert.Equal(0, row.Attempts);
        Assert.Equal(5, row.MaxAttempts);
        Assert.Null(row.Result);
        Assert.Null(row.Error);
        Assert.Null(row.LockedBy);
        Assert.Null(row.CompletedAt);
        Assert.Equal(response.Json.GetProperty("createdAt").GetDateTime().ToUniversalTime(), row.CreatedAt.ToUniversalTime());
        JsonAssert.Equivalent("""{"durationMs": 50, "failTimes": 0, "failPermanently": false, "failUntil": null}""", row.Payload);
    }

    [Theory]
    [InlineData("""{"durationMs": -1}""", "durationMs")]
    [InlineData("""{"durationMs": 600001}""", "durationMs")]
    [InlineData("""{"failTimes": 101, "durationMs": 1}""", "failTimes")]
    [InlineData("""{"failTimes": -1, "durationMs": 1}""", "failTimes")]
    [InlineData("""{}""", "durationMs")]
    public async Task AnInvalidSleepAnswers400ValidationProblemNamingTheFieldAndStoresNothing(string body, string field)
    {
        long rowsBefore = await factory.Operations.CountAsync();

        var response = await _client.SubmitSleepAsync(body);

        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, "urn:pollingapi:problem:validation-failed",
            PollingApiClient.SleepRoute);
        var errors = problem.GetProperty("errors");
        Assert.Equal([field], errors.EnumerateObject().Select(p => p.Name));
        var messages = errors.GetProperty(field).EnumerateArray().Select(m => m.GetString()!).ToArray();
        Assert.NotEmpty(messages);
        Assert.All(messages, message => Assert.Contains(field, message, StringComparison.Ordinal));
        Assert.Equal(rowsBefore, await factory.Operations.CountAsync());
    }

    [Theory]
    [InlineData("""{"durationMs":""")]
    [InlineData("""{"durationMs":1,"bogus":1}""")]
    [InlineData("""{"durationMs":"5"}""")]
    [InlineData("""{"durationMs":1,"failTimes":null}""")]
    [InlineData("""[{"durationMs":1}]""")]
    [InlineData("null")]
    [InlineData("")]
    public async Task AnUnreadableBodyAnswers400MalformedJsonAndStoresNothing(string body)
    {
        long rowsBefore = await factory.Operations.CountAsync();

        var response = await _client.SubmitSleepAsync(body);

        ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, "urn:pollingapi:problem:malformed-json", PollingApiClient.SleepRoute);
        Assert.Equal(rowsBefore, await factory.Operations.CountAsync());
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/xml")]
    [InlineData(null)]
    public async Task ABodyThatIsNotDeclaredJsonAnswers415ProblemAndStoresNothing(string? contentType)
    {
        long rowsBefore = await factory.Operations.CountAsync();
        var content = new StringContent("""{"durationMs": 1}""", Encoding.UTF8);
        content.Headers.ContentType = contentType is null ? null : new(contentType);

        var response = await _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, content);

        // docs/problems.md: the endpoint's own type, or the RFC 9110 one when the router answers first.
        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.UnsupportedMediaType, type: null, PollingApiClient.SleepRoute);
        Assert.Contains(problem.GetProperty("type").GetString(), UnsupportedMediaTypeTypes);
        Assert.Equal(rowsBefore, await factory.Operations.CountAsync());
    }

    [Fact]
    public async Task ABodyOverTheLimitWithContentLengthAnswers413ProblemAndStoresNothing()
    {
        long rowsBefore = await factory.Operations.CountAsync();
        var content = new ByteArrayContent(PaddedSleep(MaxRequestBodyBytes + 1));
        content.Headers.ContentType = new("application/json");

        var response = await _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, content);

        ProblemAssert.IsProblem(response, HttpStatusCode.RequestEntityTooLarge, "urn:pollingapi:problem:payload-too-large",
            PollingApiClient.SleepRoute);
        Assert.Equal(rowsBefore, await factory.Operations.CountAsync());
    }

    [Fact]
    public async Task AChunkedBodyOverTheLimitAnswers413ProblemAndStoresNothing()
    {
        long rowsBefore = await factory.Operations.CountAsync();
        var content = new UnknownLengthContent(PaddedSleep(MaxRequestBodyBytes + 1));
        content.Headers.ContentType = new("application/json");

        var response = await _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, content,
            request => request.Headers.TransferEncodingChunked = true);

        ProblemAssert.IsProblem(response, HttpStatusCode.RequestEntityTooLarge, "urn:pollingapi:problem:payload-too-large",
            PollingApiClient.SleepRoute);
        Assert.Equal(rowsBefore, await factory.Operations.CountAsync());
    }

    [Fact]
    public async Task ABodyOfExactlyTheLimitIsAccepted()
    {
        var content = new UnknownLengthContent(PaddedSleep(MaxRequestBodyBytes));
        content.Headers.ContentType = new("application/json");

        var response = await _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, content,
            request => request.Headers.TransferEncodingChunked = true);

        Assert.True(response.Status == HttpStatusCode.Accepted, response.ToString());
        var row = await factory.Operations.GetAsync(response.Json.GetProperty("id").GetGuid());
        Assert.Equal("pending", row.Status);
    }

    /// <summary>A valid sleep command padded with insignificant whitespace to exactly <paramref name="length"/> bytes.</summary>
    private static byte[] PaddedSleep(int length)
    {
        const string Start = """{"durationMs": 1""";
        string json = Start + new string(' ', length - Start.Length - 1) + "}";
        return Encoding.UTF8.GetBytes(json);
    }

    /// <summary>Content whose length is not known up front, so it is sent without Content-Length.</summary>
    private sealed class UnknownLengthContent(byte[] bytes) : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context) =>
            stream.WriteAsync(bytes).AsTask();

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
