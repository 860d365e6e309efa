using System.Net;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>A token bucket per tenant: once it is empty the tenant gets 429 rate-limited, other tenants do not.</summary>
public sealed class RateLimitTests(RateLimitedPollingApiFactory factory) : IClassFixture<RateLimitedPollingApiFactory>
{
    [Fact]
    public async Task ATenantOverItsRateIsToldWhenToRetryWhileAnotherTenantIsServed()
    {
        var a = factory.CreateClient(await factory.CreateApiKeyAsync("busy", "operations:read"));
        var b = factory.CreateClient(await factory.CreateApiKeyAsync("quiet", "operations:read"));

        ApiResponse? limited = null;
        for (int i = 0; i < 20 && limited is null; i++)
        {
            var response = await a.FetchAsync("/v1/operations");
            if (response.Status == HttpStatusCode.TooManyRequests)
            {
                limited = response;
            }
            else
            {
                Assert.Equal(HttpStatusCode.OK, response.Status);
            }
        }

        Assert.NotNull(limited);
        ProblemAssert.IsProblem(limited, HttpStatusCode.TooManyRequests, "urn:pollingapi:problem:rate-limited", "/v1/operations");
        Assert.True(RetryAfter.Seconds(limited) >= 1);
        Assert.Equal(HttpStatusCode.OK, (await b.FetchAsync("/v1/operations")).Status);
        Assert.Equal(HttpStatusCode.OK, (await factory.CreateClient().FetchAsync("/health/ready")).Status);
    }
}

/// <summary>A cap on a tenant's unfinished operations: beyond it a submit is 429 quota-exceeded and stores nothing.</summary>
public sealed class QuotaTests(QuotaPollingApiFactory factory) : IClassFixture<QuotaPollingApiFactory>
{
    [Fact]
    public async Task ASubmitBeyondTheTenantsUnfinishedQuotaIsRefusedAndStoresNothing()
    {
        var a = factory.CreateClient(await factory.CreateApiKeyAsync("capped", "operations:submit"));
        var b = factory.CreateClient(await factory.CreateApiKeyAsync("other", "operations:submit"));

        var first = await a.SubmitSleepAsync("""{"durationMs": 1}""");
        var second = await a.SubmitSleepAsync("""{"durationMs": 1}""");
        long before = await factory.Operations.CountAsync();
        var third = await a.SubmitSleepAsync("""{"durationMs": 1}""");
        var ofOther = await b.SubmitSleepAsync("""{"durationMs": 1}""");

        Assert.Equal(HttpStatusCode.Accepted, first.Status);
        Assert.Equal(HttpStatusCode.Accepted, second.Status);
        var problem = ProblemAssert.IsProblem(third, HttpStatusCode.TooManyRequests, "urn:pollingapi:problem:quota-exceeded", PollingApiClient.SleepRoute);
        Assert.Contains("2 pending or running", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.True(RetryAfter.Seconds(third) >= 1);
        Assert.Equal(HttpStatusCode.Accepted, ofOther.Status);
        Assert.Equal(before + 1, await factory.Operations.CountAsync());
        Assert.Equal("other", (await factory.Operations.GetAsync(ofOther.Json.GetProperty("id").GetGuid())).Owner);
    }
}
