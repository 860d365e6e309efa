using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PollingApi.Tests.Infrastructure;
using PollingApi.Operations.Storage;

namespace PollingApi.Tests;

/// <summary>
/// The database goes away (the proxy between the node and PostgreSQL is switched off) and comes back, in the
/// same process: the API answers 503 with Retry-After meanwhile and recovers without a restart.
/// </summary>
public sealed class DatabaseOutageTests(ProxiedPollingApiFactory factory) : IClassFixture<ProxiedPollingApiFactory>
{
    private static readonly TimeSpan RecoveryDeadline = TimeSpan.FromSeconds(30);

    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task AnUnreachableDatabaseAnswers503WithRetryAfterAndTheNodeRecoversWithoutRestart()
    {
        var earlier = await _client.SubmitSleepAsync("""{"durationMs": 300}""");
        Assert.True(earlier.Status == HttpStatusCode.Accepted, earlier.ToString());
        var earlierId = earlier.Json.GetProperty("id").GetGuid();
        var earlierLocation = earlier.Headers.Location!;
        string earlierPath = earlierLocation.AbsolutePath;
        long rowsBefore = await factory.Operations.CountAsync();
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(earlierId) == "running", RecoveryDeadline);

        factory.Proxy.SwitchOff();
        try
        {
            var submit = await _client.SubmitSleepAsync("""{"durationMs": 1}""");
            ProblemAssert.IsProblem(submit, HttpStatusCode.ServiceUnavailable, "urn:pollingapi:problem:database-unavailable",
                PollingApiClient.SleepRoute);
            Assert.True(RetryAfter.Seconds(submit) >= 1);
            Assert.Equal(rowsBefore, await factory.Operations.CountAsync());

            var poll = await _client.FetchAsync(earlierLocation);
            ProblemAssert.IsProblem(poll, HttpStatusCode.ServiceUnavailable, "urn:pollingapi:problem:database-unavailable", earlierPath);
            Assert.True(RetryAfter.Seconds(poll) >= 1);

            var ready = await _client.FetchAsync("/health/ready");
            Assert.True(ready.Status == HttpStatusCode.ServiceUnavailable, ready.ToString());
            var live = await _client.FetchAsync("/health/live");
            Assert.True(live.Status == HttpStatusCode.OK, live.ToString());

            // The listener lost its connection, so deletes and retries elsewhere go unheard: no cached copy is served.
            await Eventually.WaitUntilAsync(() => Task.FromResult(!Cache.IsServing), RecoveryDeadline);

            // The earlier sleep ends during the outage: its worker must keep its outcome and store it later.
            await Eventually.WaitUntilAsync(
                () => Task.FromResult(factory.Logs.Contains(LogLevel.Warning, "Storing an outcome failed")), RecoveryDeadline);
        }
        finally
        {
            factory.Proxy.SwitchOn();
        }

        var again = await _client.SubmitSleepAsync("""{"durationMs": 1}""");
        Assert.True(again.Status == HttpStatusCode.Accepted, again.ToString());
        Assert.NotNull(await factory.Operations.FindAsync(again.Json.GetProperty("id").GetGuid()));
        Assert.Equal(rowsBefore + 1, await factory.Operations.CountAsync());

        var earlierDone = await _client.PollUntilDoneAsync(earlierLocation, RecoveryDeadline);
        Assert.Equal("succeeded", earlierDone.Json.GetProperty("status").GetString());
        JsonAssert.Equivalent("""{"sleptMs":300,"attempt":1}""", earlierDone.Json.GetProperty("result"));
        Assert.Equal(1, earlierDone.Json.GetProperty("attempts").GetInt32());
        var againDone = await _client.PollUntilDoneAsync(again.Headers.Location!, RecoveryDeadline);
        Assert.Equal("succeeded", againDone.Json.GetProperty("status").GetString());

        var readyAgain = await _client.FetchAsync("/health/ready");
        Assert.True(readyAgain.Status == HttpStatusCode.OK, readyAgain.ToString());
        await Eventually.WaitUntilAsync(() => Task.FromResult(Cache.IsServing), RecoveryDeadline);
    }

    private FinishedOperationCache Cache => factory.Services.GetRequiredService<FinishedOperationCache>();

    [Fact]
    public async Task AnUnreachableDatabaseAnswers503EvenToAClientThatDoesNotAcceptJson()
    {
        factory.Proxy.SwitchOff();
        try
        {
            var response = await _client.SendAsync(HttpMethod.Get, $"/v1/operations/{Guid.CreateVersion7()}", null,
                request => request.Headers.Accept.ParseAdd("text/html"));

            Assert.True(response.Status == HttpStatusCode.ServiceUnavailable, response.ToString());
            Assert.True(RetryAfter.Seconds(response) >= 1);
            ProblemAssert.NoExceptionText(response.Body);
        }
        finally
        {
            factory.Proxy.SwitchOn();
        }
    }
}
