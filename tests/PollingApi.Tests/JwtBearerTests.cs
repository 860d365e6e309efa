using System.Net;
using System.Security.Claims;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>JWT bearer tokens, when configured: the tenant and the scopes come from the configured claims.</summary>
public sealed class JwtBearerTests(JwtPollingApiFactory factory) : IClassFixture<JwtPollingApiFactory>
{
    [Fact]
    public async Task AValidTokenSubmitsAsTheTenantItsClaimNames()
    {
        var client = ClientWith(Token(("org", "tenant-jwt"), ("scope", "operations:submit operations:read")));

        var submitted = await client.SubmitSleepAsync("""{"durationMs": 1}""");
        var read = await client.FetchAsync($"/v1/operations/{submitted.Json.GetProperty("id").GetGuid()}");

        Assert.Equal(HttpStatusCode.Accepted, submitted.Status);
        Assert.True(read.Status is HttpStatusCode.OK or HttpStatusCode.Accepted, read.ToString());
        Assert.Equal("tenant-jwt", (await factory.Operations.GetAsync(submitted.Json.GetProperty("id").GetGuid())).Owner);
    }

    [Fact]
    public async Task ATokenWithoutTheScopeIsForbidden()
    {
        var client = ClientWith(Token(("org", "tenant-jwt"), ("scope", "operations:read")));

        var response = await client.SubmitSleepAsync("""{"durationMs": 1}""");

        ProblemAssert.IsProblem(response, HttpStatusCode.Forbidden, "urn:pollingapi:problem:forbidden", PollingApiClient.SleepRoute);
    }

    [Fact]
    public async Task ATokenSignedByAnotherKeyOrWithoutATenantIsUnauthorized()
    {
        var forged = ClientWith(Token([("org", "tenant-jwt"), ("scope", "operations:read")],
            new SymmetricSecurityKey(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32))));
        var tenantless = ClientWith(Token(("scope", "operations:read")));

        var forgedAnswer = await forged.FetchAsync("/v1/operations");
        var tenantlessAnswer = await tenantless.FetchAsync("/v1/operations");

        ProblemAssert.IsProblem(forgedAnswer, HttpStatusCode.Unauthorized, "urn:pollingapi:problem:unauthorized", "/v1/operations");
        Assert.Contains("Bearer", forgedAnswer.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        ProblemAssert.IsProblem(tenantlessAnswer, HttpStatusCode.Unauthorized, "urn:pollingapi:problem:unauthorized", "/v1/operations");
    }

    [Fact]
    public async Task WithJwtConfiguredAnApiKeyStillWorksAndTheChallengeOffersBoth()
    {
        var keyed = factory.CreateClient(await factory.CreateApiKeyAsync("tenant-key", "operations:read"));

        var withKey = await keyed.FetchAsync("/v1/operations");
        var without = await factory.CreateClient().FetchAsync("/v1/operations");

        Assert.Equal(HttpStatusCode.OK, withKey.Status);
        string challenge = without.Headers.WwwAuthenticate.ToString();
        Assert.Contains("ApiKey header=\"X-Api-Key\"", challenge, StringComparison.Ordinal);
        Assert.Contains("Bearer", challenge, StringComparison.Ordinal);
    }

    private HttpClient ClientWith(string token)
    {
        var client = factory.CreateClient();
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    private static string Token((string Type, string Value)[] claims, SecurityKey? key = null) =>
        new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = JwtPollingApiFactory.Issuer,
            Audience = JwtPollingApiFactory.Audience,
            Subject = new ClaimsIdentity(claims.Select(claim => new Claim(claim.Type, claim.Value))),
            Expires = TimeProvider.System.GetUtcNow().UtcDateTime.AddMinutes(5),
            SigningCredentials = new SigningCredentials(key ?? JwtPollingApiFactory.SigningKey, SecurityAlgorithms.HmacSha256),
        });

    private static string Token(params (string Type, string Value)[] claims) => Token(claims, null);
}
