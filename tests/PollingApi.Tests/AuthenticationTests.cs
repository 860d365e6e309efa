using System.Net;
using System.Security.Cryptography;
using System.Text;
using Npgsql;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>Who may call: API keys in X-Api-Key, scopes per endpoint, 401 and 403 as problems, health left open.</summary>
public sealed class AuthenticationTests(SecuredPollingApiFactory factory) : IClassFixture<SecuredPollingApiFactory>
{
    private const string Sleep = """{"durationMs": 1}""";

    [Theory]
    [InlineData("GET", "/v1/operations")]
    [InlineData("GET", "/v1/operations/0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50")]
    [InlineData("POST", "/v1/operations/0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50/cancel")]
    [InlineData("POST", "/v1/diagnostics/sleep")]
    [InlineData("GET", "/v1/accounts/0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50")]
    [InlineData("GET", "/v1/admin/consistency")]
    public async Task ARequestWithoutCredentialsIsUnauthorizedWithAChallenge(string method, string path)
    {
        long before = await factory.Operations.CountAsync();

        var response = await factory.CreateClient().SendAsync(new HttpMethod(method), path,
            method == "POST" ? PollingApiClient.JsonBody(Sleep) : null);

        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.Unauthorized, "urn:pollingapi:problem:unauthorized", path);
        Assert.Contains("X-Api-Key", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Contains("ApiKey header=\"X-Api-Key\"", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        Assert.Equal(before, await factory.Operations.CountAsync());
    }

    [Theory]
    [InlineData("text/html,application/xhtml+xml")]
    [InlineData("application/xml")]
    public async Task ABrowsersRequestWithoutCredentialsGetsTheSameProblem(string accept)
    {
        var response = await factory.CreateClient().SendAsync(HttpMethod.Get, "/v1/operations", null,
            request => request.Headers.TryAddWithoutValidation("Accept", accept));

        ProblemAssert.IsProblem(response, HttpStatusCode.Unauthorized, "urn:pollingapi:problem:unauthorized", "/v1/operations");
        Assert.DoesNotContain(factory.Logs.Entries, log => log.Level >= Microsoft.Extensions.Logging.LogLevel.Error);
    }

    [Theory]
    [InlineData("not-a-key")]
    [InlineData("pak_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    public async Task AnUnknownKeyIsUnauthorized(string key)
    {
        var response = await factory.CreateClient(key).FetchAsync("/v1/operations");

        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.Unauthorized, "urn:pollingapi:problem:unauthorized", "/v1/operations");
        Assert.Contains("unknown or revoked", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/health/live")]
    [InlineData("/health/ready")]
    [InlineData("/openapi/v1.json")]
    public async Task HealthAndTheDocumentStayOpenToAnonymousCallers(string path)
    {
        var response = await factory.CreateClient().FetchAsync(path);

        Assert.Equal(HttpStatusCode.OK, response.Status);
    }

    [Theory]
    [InlineData("operations:read", "POST", "/v1/diagnostics/sleep", "operations:submit")]
    [InlineData("operations:submit", "GET", "/v1/operations", "operations:read")]
    [InlineData("operations:read", "POST", "/v1/operations/0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50/cancel", "operations:manage")]
    [InlineData("operations:read", "POST", "/v1/operations/0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50/retry", "operations:manage")]
    [InlineData("operations:read", "DELETE", "/v1/operations/0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50", "operations:manage")]
    [InlineData("operations:submit", "GET", "/v1/accounts/0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50", "operations:read")]
    [InlineData("operations:read,operations:manage", "GET", "/v1/admin/consistency", "admin")]
    public async Task AKeyWithoutTheScopeAnEndpointNeedsIsForbidden(string scopes, string method, string path, string needed)
    {
        var client = factory.CreateClient(await factory.CreateApiKeyAsync("tenant-a", scopes.Split(',')));
        long before = await factory.Operations.CountAsync();

        var response = await client.SendAsync(new HttpMethod(method), path, method == "POST" ? PollingApiClient.JsonBody(Sleep) : null);

        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.Forbidden, "urn:pollingapi:problem:forbidden", path);
        Assert.Contains($"'{needed}'", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(before, await factory.Operations.CountAsync());
    }

    [Fact]
    public async Task EachScopeOpensItsEndpointsAndWhatIsSubmittedBelongsToTheKeysTenant()
    {
        var submitter = factory.CreateClient(await factory.CreateApiKeyAsync("tenant-a", "operations:submit"));
        var reader = factory.CreateClient(await factory.CreateApiKeyAsync("tenant-a", "operations:read"));
        var manager = factory.CreateClient(await factory.CreateApiKeyAsync("tenant-a", "operations:manage"));

        var submitted = await submitter.SubmitSleepAsync("""{"durationMs": 60000}""");
        Assert.Equal(HttpStatusCode.Accepted, submitted.Status);
        var id = submitted.Json.GetProperty("id").GetGuid();
        var read = await reader.FetchAsync($"/v1/operations/{id}");
        Assert.Equal(HttpStatusCode.Accepted, read.Status);
        Assert.Equal(id, read.Json.GetProperty("id").GetGuid());
        var cancelled = await manager.SendAsync(HttpMethod.Post, $"/v1/operations/{id}/cancel", null);
        Assert.True(cancelled.Status is HttpStatusCode.OK or HttpStatusCode.Accepted, cancelled.ToString());

        Assert.Equal("tenant-a", (await factory.Operations.GetAsync(id)).Owner);
    }

    [Fact]
    public async Task ARevokedKeyStopsWorkingWithinSecondsAndOnlyItsHashIsStored()
    {
        string key = await factory.CreateApiKeyAsync("tenant-r", "operations:read");
        var client = factory.CreateClient(key);
        Assert.Equal(HttpStatusCode.OK, (await client.FetchAsync("/v1/operations")).Status);

        await using var connection = new NpgsqlConnection(factory.DatabaseConnectionString);
        await connection.OpenAsync();
        await using var find = new NpgsqlCommand("SELECT id, tenant, scopes, key_prefix FROM api_keys WHERE key_hash = @hash", connection);
        find.Parameters.AddWithValue("hash", SHA256.HashData(Encoding.ASCII.GetBytes(key)));
        Guid id;
        await using (var row = await find.ExecuteReaderAsync())
        {
            Assert.True(await row.ReadAsync(), "the key's hash is stored");
            id = row.GetGuid(0);
            Assert.Equal("tenant-r", row.GetString(1));
            Assert.Equal(["operations:read"], row.GetFieldValue<string[]>(2));
            Assert.True(key.StartsWith(row.GetString(3), StringComparison.Ordinal) && row.GetString(3).Length < 16);
        }

        await using (var plain = new NpgsqlCommand("SELECT count(*) FROM api_keys AS k WHERE position(@key IN k::text) > 0", connection))
        {
            plain.Parameters.AddWithValue("key", key);
            Assert.Equal(0L, (long)(await plain.ExecuteScalarAsync())!);
        }

        using var output = new StringWriter();
        using var error = new StringWriter();
        int exitCode = await PollingApi.Operations.Security.ApiKeysCommandLine.RunAsync(["api-keys", "revoke", id.ToString()],
            factory.Services, output, error, CancellationToken.None);
        Assert.Equal(0, exitCode);

        ApiResponse? last = null;
        await Eventually.WaitUntilAsync(async () =>
        {
            last = await client.FetchAsync("/v1/operations");
            return last.Status == HttpStatusCode.Unauthorized;
        }, TimeSpan.FromSeconds(10), () => $"the revoked key still answers {last}");
        ProblemAssert.IsProblem(last!, HttpStatusCode.Unauthorized, "urn:pollingapi:problem:unauthorized", "/v1/operations");
    }

    [Fact]
    public async Task AnApiKeyMayComeAsABearerCredentialForScrapersThatCannotSetHeaders()
    {
        string key = await factory.CreateApiKeyAsync("tenant-a", "operations:read");
        var client = factory.CreateClient();
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);

        var response = await client.FetchAsync("/v1/operations");
        var wrong = await factory.CreateClient().SendAsync(HttpMethod.Get, "/v1/operations", null,
            request => request.Headers.TryAddWithoutValidation("Authorization", "Bearer pak_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));

        Assert.Equal(HttpStatusCode.OK, response.Status);
        ProblemAssert.IsProblem(wrong, HttpStatusCode.Unauthorized, "urn:pollingapi:problem:unauthorized", "/v1/operations");
    }

    [Fact]
    public async Task WithBothAnXApiKeyAndABearerKeyTheXApiKeyDecides()
    {
        string bearer = await factory.CreateApiKeyAsync("tenant-bearer", "operations:submit");
        string header = await factory.CreateApiKeyAsync("tenant-header", "operations:submit");
        var client = factory.CreateClient(header);
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);

        var submitted = await client.SubmitSleepAsync(Sleep);

        Assert.Equal(HttpStatusCode.Accepted, submitted.Status);
        Assert.Equal("tenant-header", (await factory.Operations.GetAsync(submitted.Json.GetProperty("id").GetGuid())).Owner);
    }

    [Fact]
    public async Task TwoKeyHeadersAreUnauthorized()
    {
        string key = await factory.CreateApiKeyAsync("tenant-a", "operations:read");

        var response = await factory.CreateClient().SendAsync(HttpMethod.Get, "/v1/operations", null, request =>
        {
            request.Headers.Add("X-Api-Key", key);
            request.Headers.Add("X-Api-Key", key);
        });

        ProblemAssert.IsProblem(response, HttpStatusCode.Unauthorized, "urn:pollingapi:problem:unauthorized", "/v1/operations");
    }
}
