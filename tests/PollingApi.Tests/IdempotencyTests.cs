using System.Net;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>Idempotency keys: retries of the same request return the same operation. No worker runs here.</summary>
public sealed class IdempotencyTests(ApiOnlyPollingApiFactory factory) : IClassFixture<ApiOnlyPollingApiFactory>
{
    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task TheSameKeyAndRequestReturnTheSameOperationMarkedAsReplayed()
    {
        string key = $"order-{Guid.NewGuid()}";
        var first = await SubmitAsync("""{"durationMs": 5}""", key);
        var second = await SubmitAsync("""{ "durationMs" : 5, "failTimes": 0 }""", key);

        Assert.Equal(HttpStatusCode.Accepted, first.Status);
        Assert.Null(first.Header("Idempotent-Replayed"));
        Assert.Equal(HttpStatusCode.Accepted, second.Status);
        Assert.Equal("true", second.Header("Idempotent-Replayed"));
        Assert.Equal(first.Json.GetProperty("id").GetGuid(), second.Json.GetProperty("id").GetGuid());
        Assert.Equal(first.Header("Location"), second.Header("Location"));
        Assert.Equal(1, await CountWithKeyAsync(key));
    }

    [Fact]
    public async Task TheSameKeyWithADifferentBodyAnswers422IdempotencyKeyReused()
    {
        string key = $"order-{Guid.NewGuid()}";
        var first = await SubmitAsync("""{"durationMs": 5}""", key);
        var reused = await SubmitAsync("""{"durationMs": 6}""", key);

        var problem = ProblemAssert.IsProblem(reused, HttpStatusCode.UnprocessableEntity, "urn:pollingapi:problem:idempotency-key-reused",
            PollingApiClient.SleepRoute);
        Assert.Contains(first.Json.GetProperty("id").GetString()!, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(1, await CountWithKeyAsync(key));
    }

    [Theory]
    [InlineData("cl\u00e9")]
    [InlineData("tab\tinside")]
    [InlineData("x", 256)]
    public async Task AnInvalidKeyAnswers400AndStoresNothing(string key, int repeat = 1)
    {
        string value = string.Concat(Enumerable.Repeat(key, repeat));
        long before = await factory.Operations.CountAsync();

        var response = await SubmitAsync("""{"durationMs": 5}""", value);

        ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, "urn:pollingapi:problem:invalid-idempotency-key", PollingApiClient.SleepRoute);
        Assert.Equal(before, await factory.Operations.CountAsync());
    }

    [Fact]
    public async Task AKeyOf255PrintableCharactersIsAccepted()
    {
        string key = new string('k', 250) + "~ !#$"[..5];
        var response = await SubmitAsync("""{"durationMs": 5}""", key);
        Assert.Equal(HttpStatusCode.Accepted, response.Status);
        Assert.Equal(1, await CountWithKeyAsync(key));
    }

    [Fact]
    public async Task FiftyConcurrentIdenticalSubmitsCreateExactlyOneOperation()
    {
        string key = $"burst-{Guid.NewGuid()}";
        var responses = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => SubmitAsync("""{"durationMs": 7}""", key)));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.Accepted, r.Status));
        Assert.Single(responses.Select(r => r.Json.GetProperty("id").GetGuid()).Distinct());
        Assert.Equal(49, responses.Count(r => r.Header("Idempotent-Replayed") == "true"));
        Assert.Equal(1, await CountWithKeyAsync(key));
    }

    [Fact]
    public async Task KeysAreScopedToTheRouteAndBodyNotJustTheKey()
    {
        string key = $"shared-{Guid.NewGuid()}";
        await SubmitAsync("""{"durationMs": 5}""", key);
        var otherBody = await SubmitAsync("""{"durationMs": 5, "failPermanently": true}""", key);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, otherBody.Status);
    }

    private Task<ApiResponse> SubmitAsync(string json, string key) =>
        _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody(json),
            request => request.Headers.TryAddWithoutValidation("Idempotency-Key", key));

    private async Task<long> CountWithKeyAsync(string key)
    {
        await using var connection = new Npgsql.NpgsqlConnection(factory.DatabaseConnectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand("SELECT count(*) FROM operations WHERE idempotency_key = @key", connection);
        command.Parameters.AddWithValue("key", key);
        return (long)(await command.ExecuteScalarAsync())!;
    }
}
