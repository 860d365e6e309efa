using System.Net;
using System.Text.Json;
using Npgsql;
using PollingApi.Tests.Infrastructure;
using StandardWebhooks;

namespace PollingApi.Tests;

/// <summary>A secured node that delivers webhooks over http to 127.0.0.1, as tests need.</summary>
public sealed class WebhookPollingApiFactory : SecuredPollingApiFactory
{
    protected override IEnumerable<(string Key, string Value)> MoreSettings =>
    [
        ("Webhooks:AllowHttp", "true"),
        ("Webhooks:AllowPrivateNetworks", "true"),
        ("Webhooks:PublicBaseUrl", "https://api.example.test"),
    ];
}

/// <summary>A secured node that accepts http receivers but, as deployed, no private or loopback address.</summary>
public sealed class PublicOnlyWebhookPollingApiFactory : SecuredPollingApiFactory
{
    protected override IEnumerable<(string Key, string Value)> MoreSettings => [("Webhooks:AllowHttp", "true")];
}

/// <summary>
/// Webhooks against a real receiver (Kestrel on 127.0.0.1): signed deliveries that a Standard Webhooks library verifies,
/// retries after a 500 and a dropped connection with the same webhook-id, Retry-After, 410 disabling the subscription,
/// test pings, and the tenant rules of subscriptions.
/// </summary>
public sealed class WebhookTests(WebhookPollingApiFactory factory) : IClassFixture<WebhookPollingApiFactory>, IAsyncLifetime
{
    private static readonly string[] Everything = ["operations:submit", "operations:read", "operations:manage"];
    private WebhookReceiver _receiver = null!;
    private HttpClient _client = null!;
    private string _tenant = "";

    public async Task InitializeAsync()
    {
        _receiver = await WebhookReceiver.StartAsync();
        _tenant = "hooks-" + Guid.NewGuid().ToString("N")[..8];
        _client = factory.CreateClient(await factory.CreateApiKeyAsync(_tenant, Everything));
    }

    public async Task DisposeAsync() => await _receiver.DisposeAsync();

    [Fact]
    public async Task ASucceededOperationIsDeliveredSignedTheStandardWayAsADeliveryOperation()
    {
        var (subscription, secret) = await SubscribeAsync("""["operation.succeeded", "operation.failed"]""");

        var id = await FinishAsync("""{"durationMs": 1}""");
        var received = Assert.Single(await _receiver.WaitForAsync(1));

        new StandardWebhook(secret).Verify(received.Body, received.Headers);
        Assert.StartsWith("v1,", received.Headers["webhook-signature"].ToString(), StringComparison.Ordinal);
        Assert.StartsWith("msg_", received.Id, StringComparison.Ordinal);
        using var body = JsonDocument.Parse(received.Body);
        Assert.Equal("operation.succeeded", body.RootElement.GetProperty("type").GetString());
        var data = body.RootElement.GetProperty("data");
        Assert.Equal(id, data.GetProperty("id").GetGuid());
        Assert.Equal("succeeded", data.GetProperty("status").GetString());
        Assert.Equal(_tenant, data.GetProperty("tenant").GetString());
        Assert.Equal(1, data.GetProperty("result").GetProperty("sleptMs").GetInt32());
        Assert.Equal($"https://api.example.test/v1/operations/{id}", data.GetProperty("links").GetProperty("self").GetString());
        var delivery = await DeliveryAsync(received.Id);
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(delivery) == "succeeded", TimeSpan.FromSeconds(10));
        var attempts = (await _client.FetchAsync($"/v1/operations/{delivery}/attempts")).Json.GetProperty("items");
        Assert.Equal("succeeded", Assert.Single(attempts.EnumerateArray()).GetProperty("outcome").GetString());
        Assert.NotEqual(Guid.Empty, subscription);
    }

    [Fact]
    public async Task ADeliveryIsRetriedAfterA500AndADroppedConnectionWithTheSameWebhookId()
    {
        var (_, secret) = await SubscribeAsync("""["operation.failed"]""");
        _receiver.Answer(new ReceiverAnswer(500), ReceiverAnswer.DropConnection);

        var id = await FinishAsync("""{"durationMs": 1, "failPermanently": true}""");
        var received = await _receiver.WaitForAsync(3);

        Assert.Equal(3, received.Count);
        Assert.Single(received.Select(r => r.Id).Distinct());
        Assert.All(received, r => new StandardWebhook(secret).Verify(r.Body, r.Headers));
        Assert.All(received, r => Assert.Equal(id, JsonDocument.Parse(r.Body).RootElement.GetProperty("data").GetProperty("id").GetGuid()));
        var delivery = await DeliveryAsync(received[0].Id);
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(delivery) == "succeeded", TimeSpan.FromSeconds(10));
        var outcomes = (await _client.FetchAsync($"/v1/operations/{delivery}/attempts")).Json.GetProperty("items").EnumerateArray()
            .Select(a => a.GetProperty("outcome").GetString()).ToList();
        Assert.Equal(["transient_failure", "transient_failure", "succeeded"], outcomes);
    }

    [Fact]
    public async Task TheReceiversRetryAfterIsHonoured()
    {
        await SubscribeAsync("""["operation.succeeded"]""");
        _receiver.Answer(new ReceiverAnswer(429, RetryAfter: "2"));

        await FinishAsync("""{"durationMs": 1}""");
        var received = await _receiver.WaitForAsync(2);

        var waited = received[1].At - received[0].At;
        Assert.True(waited >= TimeSpan.FromSeconds(1.9), $"The retry came {waited.TotalSeconds:0.00} s after a Retry-After of 2 s.");
    }

    [Fact]
    public async Task A410GoneDisablesTheSubscriptionAndNoMoreEventsAreStoredForIt()
    {
        var (subscription, _) = await SubscribeAsync("""["operation.succeeded"]""");
        _receiver.Answer(new ReceiverAnswer(410));

        await FinishAsync("""{"durationMs": 1}""");
        var received = Assert.Single(await _receiver.WaitForAsync(1));
        var delivery = await DeliveryAsync(received.Id);
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(delivery) == "failed", TimeSpan.FromSeconds(10));
        var read = await _client.FetchAsync($"/v1/webhooks/{subscription}");
        long deliveriesBefore = await DeliveriesOfTenantAsync();
        await FinishAsync("""{"durationMs": 1}""");

        Assert.NotEqual(JsonValueKind.Null, read.Json.GetProperty("disabledAt").ValueKind);
        Assert.Contains("410", read.Json.GetProperty("disabledReason").GetString(), StringComparison.Ordinal);
        var failed = (await _client.FetchAsync($"/v1/operations/{delivery}")).Json;
        Assert.Equal("urn:pollingapi:problem:webhook-gone", failed.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal(deliveriesBefore, await DeliveriesOfTenantAsync());
        Assert.Single(_receiver.Received);
    }

    [Fact]
    public async Task ARedirectIsNotFollowedAndFailsTheDelivery()
    {
        await SubscribeAsync("""["operation.succeeded"]""");
        _receiver.Answer(new ReceiverAnswer(307, Location: "http://169.254.169.254/latest/meta-data/"));

        await FinishAsync("""{"durationMs": 1}""");
        var received = Assert.Single(await _receiver.WaitForAsync(1));
        var delivery = await DeliveryAsync(received.Id);
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(delivery) == "failed", TimeSpan.FromSeconds(10));

        var failed = (await _client.FetchAsync($"/v1/operations/{delivery}")).Json;
        Assert.Equal("urn:pollingapi:problem:webhook-rejected", failed.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal("It answered 307.", failed.GetProperty("error").GetProperty("detail").GetString());
        Assert.Single(_receiver.Received);
    }

    [Fact]
    public async Task ATestPingIsADeliveryOperationTheCallerCanPoll()
    {
        var (subscription, secret) = await SubscribeAsync("""["operation.cancelled"]""");

        var test = await _client.SendAsync(HttpMethod.Post, $"/v1/webhooks/{subscription}/test", null);
        var received = Assert.Single(await _receiver.WaitForAsync(1));

        Assert.Equal(HttpStatusCode.Accepted, test.Status);
        Assert.Equal("webhooks.deliver", test.Json.GetProperty("kind").GetString());
        new StandardWebhook(secret).Verify(received.Body, received.Headers);
        using var body = JsonDocument.Parse(received.Body);
        Assert.Equal("webhook.test", body.RootElement.GetProperty("type").GetString());
        Assert.Equal(subscription, body.RootElement.GetProperty("data").GetProperty("subscriptionId").GetGuid());
        var done = await _client.PollUntilDoneAsync(test.Headers.Location!, TimeSpan.FromSeconds(15));
        Assert.Equal("succeeded", done.Json.GetProperty("status").GetString());
        Assert.True(done.Json.GetProperty("result").GetProperty("delivered").GetBoolean());
        Assert.Equal(200, done.Json.GetProperty("result").GetProperty("statusCode").GetInt32());
    }

    [Fact]
    public async Task SubscriptionsBelongToTheirTenantAndTheSecretIsShownOnlyOnce()
    {
        var (subscription, _) = await SubscribeAsync("""["operation.succeeded"]""");
        var other = factory.CreateClient(await factory.CreateApiKeyAsync("another-" + Guid.NewGuid().ToString("N")[..8], Everything));

        var list = await _client.FetchAsync("/v1/webhooks");
        var read = await _client.FetchAsync($"/v1/webhooks/{subscription}");
        var foreign = await other.FetchAsync($"/v1/webhooks/{subscription}");
        var foreignDelete = await other.SendAsync(HttpMethod.Delete, $"/v1/webhooks/{subscription}", null);
        var foreignList = await other.FetchAsync("/v1/webhooks");
        var delete = await _client.SendAsync(HttpMethod.Delete, $"/v1/webhooks/{subscription}", null);
        var gone = await _client.FetchAsync($"/v1/webhooks/{subscription}");

        var item = Assert.Single(list.Json.GetProperty("items").EnumerateArray());
        Assert.Equal(JsonValueKind.Null, item.GetProperty("secret").ValueKind);
        Assert.Equal(JsonValueKind.Null, read.Json.GetProperty("secret").ValueKind);
        Assert.Equal(_receiver.Url.ToString(), read.Json.GetProperty("url").GetString());
        ProblemAssert.IsProblem(foreign, HttpStatusCode.NotFound, "urn:pollingapi:problem:webhook-not-found", $"/v1/webhooks/{subscription}");
        Assert.Equal(HttpStatusCode.NotFound, foreignDelete.Status);
        Assert.Empty(foreignList.Json.GetProperty("items").EnumerateArray());
        Assert.Equal(HttpStatusCode.NoContent, delete.Status);
        Assert.Equal(HttpStatusCode.NotFound, gone.Status);
    }

    [Theory]
    [InlineData("""{"url": "ftp://example.com/hook", "events": ["operation.succeeded"]}""", "url")]
    [InlineData("""{"url": "https://user:pass@example.com/hook", "events": ["operation.succeeded"]}""", "url")]
    [InlineData("""{"url": "https://example.com/hook", "events": []}""", "events")]
    [InlineData("""{"url": "https://example.com/hook", "events": ["operation.started"]}""", "events")]
    [InlineData("""{"url": "https://example.com/hook", "events": ["operation.failed"], "kinds": [""]}""", "kinds")]
    public async Task AnInvalidSubscriptionIsAValidationProblem(string body, string field)
    {
        var response = await _client.SendAsync(HttpMethod.Post, "/v1/webhooks", PollingApiClient.JsonBody(body));

        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, "urn:pollingapi:problem:validation-failed", "/v1/webhooks");
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), response.ToString());
    }

    private async Task<(Guid Id, string Secret)> SubscribeAsync(string events)
    {
        var response = await _client.SendAsync(HttpMethod.Post, "/v1/webhooks",
            PollingApiClient.JsonBody($$"""{"url": "{{_receiver.Url}}", "events": {{events}}}"""));
        Assert.True(response.Status == HttpStatusCode.Created, response.ToString());
        var id = response.Json.GetProperty("id").GetGuid();
        Assert.Equal($"/v1/webhooks/{id}", response.Headers.Location?.OriginalString);
        string secret = response.Json.GetProperty("secret").GetString()!;
        Assert.StartsWith("whsec_", secret, StringComparison.Ordinal);
        return (id, secret);
    }

    private async Task<Guid> FinishAsync(string json)
    {
        var response = await _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody(json),
            request => request.Headers.TryAddWithoutValidation("Prefer", "wait=30"));
        Assert.True(response.Status == HttpStatusCode.OK, response.ToString());
        return response.Json.GetProperty("id").GetGuid();
    }

    /// <summary>The delivery operation a webhook-id names (msg_ and the operation's id without dashes).</summary>
    private static Task<Guid> DeliveryAsync(string webhookId) => Task.FromResult(Guid.ParseExact(webhookId["msg_".Length..], "N"));

    private async Task<long> DeliveriesOfTenantAsync()
    {
        await using var connection = new NpgsqlConnection(factory.DatabaseConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM operations WHERE kind = 'webhooks.deliver' AND owner = @owner", connection);
        command.Parameters.AddWithValue("owner", _tenant);
        return (long)(await command.ExecuteScalarAsync())!;
    }
}

/// <summary>As deployed: a receiver on this machine's own network is never called.</summary>
public sealed class WebhookDestinationTests(PublicOnlyWebhookPollingApiFactory factory) : IClassFixture<PublicOnlyWebhookPollingApiFactory>
{
    [Fact]
    public async Task NoDeliveryGoesToALoopbackAddressWithoutTheSetting()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var client = factory.CreateClient(await factory.CreateApiKeyAsync("guarded", "operations:submit", "operations:read", "operations:manage"));
        var literal = await client.SendAsync(HttpMethod.Post, "/v1/webhooks",
            PollingApiClient.JsonBody($$"""{"url": "{{receiver.Url}}", "events": ["operation.succeeded"]}"""));
        // A name, not an address: accepted when given, refused when the connection would go to what it resolves to.
        var byName = await client.SendAsync(HttpMethod.Post, "/v1/webhooks",
            PollingApiClient.JsonBody($$"""{"url": "http://localhost:{{receiver.Url.Port}}/hook", "events": ["operation.succeeded"]}"""));
        var done = await client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody("""{"durationMs": 1}"""),
            request => request.Headers.TryAddWithoutValidation("Prefer", "wait=30"));
        Assert.Equal(HttpStatusCode.OK, done.Status);

        Guid delivery = Guid.Empty;
        await Eventually.WaitUntilAsync(async () =>
        {
            await using var connection = new NpgsqlConnection(factory.DatabaseConnectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand(
                "SELECT id FROM operations WHERE kind = 'webhooks.deliver' AND owner = 'guarded' AND status = 'failed'", connection);
            delivery = (Guid?)await command.ExecuteScalarAsync() ?? Guid.Empty;
            return delivery != Guid.Empty;
        }, TimeSpan.FromSeconds(15));

        var literalProblem = ProblemAssert.IsProblem(literal, HttpStatusCode.BadRequest, "urn:pollingapi:problem:validation-failed", "/v1/webhooks");
        Assert.True(literalProblem.GetProperty("errors").TryGetProperty("url", out _));
        Assert.Equal(HttpStatusCode.Created, byName.Status);
        var failed = (await client.FetchAsync($"/v1/operations/{delivery}")).Json;
        Assert.Equal("urn:pollingapi:problem:webhook-destination-not-allowed", failed.GetProperty("error").GetProperty("type").GetString());
        Assert.Empty(receiver.Received);
    }
}
