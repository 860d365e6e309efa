using System.Net;
using Npgsql;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>
/// Two tenants on one node: each sees only its own operations, idempotency keys and accounts; another tenant's answers
/// 404 exactly like one that does not exist. An operator (admin) sees every tenant's.
/// </summary>
public sealed class TenantIsolationTests(SecuredPollingApiFactory factory) : IClassFixture<SecuredPollingApiFactory>, IAsyncLifetime
{
    private static readonly string[] Everything = ["operations:submit", "operations:read", "operations:manage"];
    private HttpClient _a = null!;
    private HttpClient _b = null!;

    public async Task InitializeAsync()
    {
        _a = factory.CreateClient(await factory.CreateApiKeyAsync("tenant-a", Everything));
        _b = factory.CreateClient(await factory.CreateApiKeyAsync("tenant-b", Everything));
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Theory]
    [InlineData("GET", "")]
    [InlineData("GET", "?wait=5")]
    [InlineData("GET", "/attempts")]
    [InlineData("POST", "/cancel")]
    [InlineData("POST", "/retry")]
    [InlineData("DELETE", "")]
    public async Task AnotherTenantsOperationIsNotFoundAndStaysAsItWas(string method, string suffix)
    {
        var submitted = await _a.SubmitSleepAsync("""{"durationMs": 1, "failPermanently": true}""");
        var id = submitted.Json.GetProperty("id").GetGuid();
        var finished = await _a.PollUntilDoneAsync(new Uri($"/v1/operations/{id}", UriKind.Relative), TimeSpan.FromSeconds(30));
        Assert.Equal("failed", finished.Json.GetProperty("status").GetString());
        var before = await factory.Operations.GetAsync(id);

        var response = await _b.SendAsync(new HttpMethod(method), $"/v1/operations/{id}{suffix}", null);

        ProblemAssert.IsProblem(response, HttpStatusCode.NotFound, "urn:pollingapi:problem:operation-not-found", $"/v1/operations/{id}");
        Assert.Equal(before, await factory.Operations.GetAsync(id));
        Assert.Equal(HttpStatusCode.OK, (await _a.FetchAsync($"/v1/operations/{id}")).Status);
    }

    [Fact]
    public async Task AListShowsOnlyTheCallersOperations()
    {
        var ofA = (await _a.SubmitSleepAsync("""{"durationMs": 1}""")).Json.GetProperty("id").GetGuid();
        var ofB = (await _b.SubmitSleepAsync("""{"durationMs": 1}""")).Json.GetProperty("id").GetGuid();

        var listA = await IdsAsync(_a);
        var listB = await IdsAsync(_b);

        Assert.Contains(ofA, listA);
        Assert.DoesNotContain(ofB, listA);
        Assert.Contains(ofB, listB);
        Assert.DoesNotContain(ofA, listB);
        foreach (var id in listA)
        {
            Assert.Equal("tenant-a", (await factory.Operations.GetAsync(id)).Owner);
        }
    }

    [Fact]
    public async Task TwoTenantsMayUseTheSameIdempotencyKeyIndependently()
    {
        string key = $"order-{Guid.NewGuid()}";

        var first = await SubmitWithKeyAsync(_a, key);
        var second = await SubmitWithKeyAsync(_b, key);
        var again = await SubmitWithKeyAsync(_a, key);

        Assert.Equal(HttpStatusCode.Accepted, first.Status);
        Assert.True(second.Status is HttpStatusCode.Accepted or HttpStatusCode.OK, second.ToString());
        Assert.Null(second.Header("Idempotent-Replayed"));
        Assert.NotEqual(first.Json.GetProperty("id").GetGuid(), second.Json.GetProperty("id").GetGuid());
        Assert.Equal("true", again.Header("Idempotent-Replayed"));
        Assert.Equal(first.Json.GetProperty("id").GetGuid(), again.Json.GetProperty("id").GetGuid());

        await using var connection = new NpgsqlConnection(factory.DatabaseConnectionString);
        await connection.OpenAsync();
        await using var owners = new NpgsqlCommand("SELECT array_agg(owner ORDER BY owner) FROM operations WHERE idempotency_key = @key", connection);
        owners.Parameters.AddWithValue("key", key);
        Assert.Equal(["tenant-a", "tenant-b"], (string[])(await owners.ExecuteScalarAsync())!);
    }

    [Fact]
    public async Task AnOperatorWithTheAdminScopeSeesAndManagesEveryTenantsOperations()
    {
        var admin = factory.CreateClient(await factory.CreateApiKeyAsync("operators", "admin"));
        var ofA = (await _a.SubmitSleepAsync("""{"durationMs": 60000}""")).Json.GetProperty("id").GetGuid();
        var ofB = (await _b.SubmitSleepAsync("""{"durationMs": 60000}""")).Json.GetProperty("id").GetGuid();

        var read = await admin.FetchAsync($"/v1/operations/{ofA}");
        var list = await IdsAsync(admin);
        var cancel = await admin.SendAsync(HttpMethod.Post, $"/v1/operations/{ofB}/cancel", null);

        Assert.Equal(HttpStatusCode.Accepted, read.Status);
        Assert.Contains(ofA, list);
        Assert.Contains(ofB, list);
        Assert.True(cancel.Status is HttpStatusCode.OK or HttpStatusCode.Accepted, cancel.ToString());
        Assert.Equal("tenant-b", (await factory.Operations.GetAsync(ofB)).Owner);
        var submit = await admin.SubmitSleepAsync("""{"durationMs": 1}""");
        ProblemAssert.IsProblem(submit, HttpStatusCode.Forbidden, "urn:pollingapi:problem:forbidden", PollingApiClient.SleepRoute);
    }

    [Fact]
    public async Task AnotherTenantsAccountIsNotFoundAndCannotBeDebited()
    {
        var accountOfA = await OpenAccountAsync(_a, 10_000);
        var accountOfB = await OpenAccountAsync(_b, 0);

        var read = await _b.FetchAsync($"/v1/accounts/{accountOfA}");
        var transfer = await WaitAsync(_b, "/v1/transfers",
            $$"""{"from": "{{accountOfA}}", "to": "{{accountOfB}}", "amount": 5000, "currency": "EUR"}""");

        ProblemAssert.IsProblem(read, HttpStatusCode.NotFound, "urn:pollingapi:problem:account-not-found", $"/v1/accounts/{accountOfA}");
        Assert.Equal("failed", transfer.Json.GetProperty("status").GetString());
        Assert.Equal("urn:pollingapi:problem:unknown-account", transfer.Json.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal(10_000, (await _a.FetchAsync($"/v1/accounts/{accountOfA}")).Json.GetProperty("balance").GetInt64());
        await using var connection = new NpgsqlConnection(factory.DatabaseConnectionString);
        await connection.OpenAsync();
        await using var entries = new NpgsqlCommand(
            "SELECT count(*) FROM ledger_entries WHERE operation_id = @id", connection);
        entries.Parameters.AddWithValue("id", transfer.Json.GetProperty("id").GetGuid());
        Assert.Equal(0L, (long)(await entries.ExecuteScalarAsync())!);
        await using var tenants = new NpgsqlCommand("SELECT tenant FROM accounts WHERE id = @id", connection);
        tenants.Parameters.AddWithValue("id", accountOfA);
        Assert.Equal("tenant-a", (string)(await tenants.ExecuteScalarAsync())!);
    }

    private static async Task<List<Guid>> IdsAsync(HttpClient client)
    {
        var page = await client.FetchAsync("/v1/operations?limit=100");
        Assert.Equal(HttpStatusCode.OK, page.Status);
        return [.. page.Json.GetProperty("items").EnumerateArray().Select(item => item.GetProperty("id").GetGuid())];
    }

    private static Task<ApiResponse> SubmitWithKeyAsync(HttpClient client, string key) =>
        client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody("""{"durationMs": 1}"""),
            request => request.Headers.Add("Idempotency-Key", key));

    private static async Task<ApiResponse> WaitAsync(HttpClient client, string route, string json)
    {
        var response = await client.SendAsync(HttpMethod.Post, route, PollingApiClient.JsonBody(json),
            request => request.Headers.TryAddWithoutValidation("Prefer", "wait=30"));
        Assert.True(response.Status == HttpStatusCode.OK, $"Expected the operation to finish within the wait: {response}");
        return response;
    }

    private static async Task<Guid> OpenAccountAsync(HttpClient client, long balance) =>
        (await WaitAsync(client, "/v1/accounts", $$"""{"currency": "EUR", "openingBalance": {{balance}}}"""))
        .Json.GetProperty("result").GetProperty("accountId").GetGuid();
}
