using System.Net;
using PollingApi.Operations;
using PollingApi.Operations.Storage;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>Each command decides whether its failed or cancelled operations may be replayed, and for how long.</summary>
public sealed class ReplayTests(PollingApiFactory factory) : IClassFixture<PollingApiFactory>
{
    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task ATransferRefusedForInsufficientFundsIsFinalAndCannotBeReplayed()
    {
        var from = await OpenAsync(100);
        var to = await OpenAsync(0);
        var transfer = await WaitAsync("/v1/transfers", $$"""{"from": "{{from}}", "to": "{{to}}", "amount": 5000, "currency": "EUR"}""");
        Assert.Equal("urn:pollingapi:problem:insufficient-funds", transfer.Json.GetProperty("error").GetProperty("type").GetString());
        var id = transfer.Json.GetProperty("id").GetGuid();
        var before = await factory.Operations.GetAsync(id);

        var retry = await _client.SendAsync(HttpMethod.Post, $"/v1/operations/{id}/retry", null);

        var problem = ProblemAssert.IsProblem(retry, HttpStatusCode.Conflict, "urn:pollingapi:problem:replay-not-allowed", $"/v1/operations/{id}/retry");
        Assert.Equal("failed", problem.GetProperty("currentStatus").GetString());
        Assert.Contains("submit the command again", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(before, await factory.Operations.GetAsync(id));
    }

    [Fact]
    public void ACancelledTransferOrOneWhoseAttemptsRanOutMayStillBeReplayed()
    {
        var rule = CommandReplay.ExceptBusinessFailures;
        var cancelled = new OperationRow
        {
            Kind = "transfers.create", Status = "cancelled", CompletedAt = TimeProvider.System.GetUtcNow().UtcDateTime,
            Error = """{"type":"urn:pollingapi:problem:operation-cancelled","title":"The operation was cancelled.","detail":null}""",
        };
        var exhausted = cancelled with
        {
            Status = "failed", Error = """{"type":"urn:pollingapi:problem:attempts-exhausted","title":"t","detail":null}""",
        };

        Assert.Null(rule.RefusalFor(cancelled, TimeProvider.System.GetUtcNow().UtcDateTime));
        Assert.Null(rule.RefusalFor(exhausted, TimeProvider.System.GetUtcNow().UtcDateTime));
    }

    [Fact]
    public async Task ADiagnosticsOperationThatFailedPermanentlyMayBeReplayed()
    {
        var failed = await WaitAsync(PollingApiClient.SleepRoute, """{"durationMs": 1, "failPermanently": true}""");
        var id = failed.Json.GetProperty("id").GetGuid();

        var retry = await _client.SendAsync(HttpMethod.Post, $"/v1/operations/{id}/retry", null);

        Assert.True(retry.Status is HttpStatusCode.Accepted or HttpStatusCode.OK, retry.ToString());
        Assert.Equal(id, retry.Json.GetProperty("id").GetGuid());
        var replayed = await _client.PollUntilDoneAsync(new Uri($"/v1/operations/{id}", UriKind.Relative), TimeSpan.FromSeconds(30));
        Assert.Equal(1, replayed.Json.GetProperty("attempts").GetInt32());
        Assert.True((await factory.Operations.GetAsync(id)).UpdatedAt > failed.Json.GetProperty("updatedAt").GetDateTime());
    }

    [Fact]
    public void ACommandsReplayWindowAndRefusalAreDecidedFromTheOperation()
    {
        var now = new DateTime(2026, 11, 30, 12, 0, 0, DateTimeKind.Utc);
        var failed = new OperationRow
        {
            Kind = "billing.invoice", Status = "failed", CompletedAt = now.AddHours(-2),
            Error = """{"type":"urn:pollingapi:problem:payment-declined","title":"t","detail":null}""",
        };

        Assert.Null(CommandReplay.Allowed.RefusalFor(failed, now));
        Assert.Contains("not replayed", CommandReplay.Never.RefusalFor(failed, now), StringComparison.Ordinal);
        Assert.Contains("01:00:00 after they end", (CommandReplay.Allowed with { Window = TimeSpan.FromHours(1) }).RefusalFor(failed, now),
            StringComparison.Ordinal);
        Assert.Null((CommandReplay.Allowed with { Window = TimeSpan.FromHours(3) }).RefusalFor(failed, now));
        Assert.Contains("failed permanently", CommandReplay.ExceptBusinessFailures.RefusalFor(failed, now), StringComparison.Ordinal);
    }

    private async Task<ApiResponse> WaitAsync(string route, string json)
    {
        var response = await _client.SendAsync(HttpMethod.Post, route, PollingApiClient.JsonBody(json),
            request => request.Headers.TryAddWithoutValidation("Prefer", "wait=30"));
        Assert.True(response.Status == HttpStatusCode.OK, $"Expected the operation to finish within the wait: {response}");
        return response;
    }

    private async Task<Guid> OpenAsync(long balance) =>
        (await WaitAsync("/v1/accounts", $$"""{"currency": "EUR", "openingBalance": {{balance}}}"""))
        .Json.GetProperty("result").GetProperty("accountId").GetGuid();
}
