using System.Net;
using Microsoft.Extensions.Logging;
using Npgsql;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>
/// The connection to PostgreSQL breaks after a write was sent: a proxy between the node and the database either drops
/// the write before the server gets it or drops the server's acknowledgement after the commit. Every answer must match
/// what the database holds: a 2xx for what is stored, a plain 503 only when nothing is, and 503 commit-outcome-unknown
/// (naming the operation) when the node cannot tell in time.
/// </summary>
public sealed class CommitOutcomeTests(ProxiedPollingApiFactory factory) : IClassFixture<ProxiedPollingApiFactory>
{
    private const string CommitOutcomeUnknown = "urn:pollingapi:problem:commit-outcome-unknown";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task ASubmitWhoseCommitAcknowledgementIsLostIsAnswered202AndStoredOnce()
    {
        long before = await factory.Operations.CountAsync();
        var broken = factory.Proxy.ArmFault(TcpProxy.Containing("\"durationMs\":21,"), FaultMoment.AfterTheCommit);

        var submit = await _client.SubmitSleepAsync("""{"durationMs": 21}""");

        Assert.True(broken.IsCompleted, "The proxy never saw the insert.");
        Assert.True(submit.Status == HttpStatusCode.Accepted, submit.ToString());
        var id = submit.Json.GetProperty("id").GetGuid();
        Assert.EndsWith($"/v1/operations/{id}", submit.Headers.Location!.ToString(), StringComparison.Ordinal);
        Assert.Equal(before + 1, await factory.Operations.CountAsync());
        Assert.Equal("diagnostics.sleep", (await factory.Operations.GetAsync(id)).Kind);
        Assert.True(factory.Logs.Contains(LogLevel.Warning, "Commit outcome of a batch of 1 submits was unknown and is settled: 1 stored, 0 written again"),
            "The node did not settle the insert by reading it back.");
        var done = await _client.PollUntilDoneAsync(submit.Headers.Location!, Deadline);
        Assert.Equal("succeeded", done.Json.GetProperty("status").GetString());
    }

    [Fact]
    public async Task ASubmitThatNeverReachedTheDatabaseIsWrittenAgainAndAnswered202()
    {
        long before = await factory.Operations.CountAsync();
        var broken = factory.Proxy.ArmFault(TcpProxy.Containing("\"durationMs\":22,"), FaultMoment.BeforeTheServer);

        var submit = await _client.SubmitSleepAsync("""{"durationMs": 22}""");

        Assert.True(broken.IsCompleted, "The proxy never saw the insert.");
        Assert.True(submit.Status == HttpStatusCode.Accepted, submit.ToString());
        var id = submit.Json.GetProperty("id").GetGuid();
        Assert.Equal(before + 1, await factory.Operations.CountAsync());
        Assert.NotNull(await factory.Operations.FindAsync(id));
        Assert.True(factory.Logs.Contains(LogLevel.Warning, "Commit outcome of a batch of 1 submits was unknown and is settled: 0 stored, 1 written again"),
            "The node did not write the lost insert again.");
    }

    [Fact]
    public async Task ASubmitWhoseCommitCannotBeSettledNamesItsOperationWhichItsLocationShowsOnceTheDatabaseIsBack()
    {
        long before = await factory.Operations.CountAsync();

        var (submit, id) = await SubmitWhileTheDatabaseGoesAwayAsync(23, FaultMoment.AfterTheCommit);

        Assert.Equal(before + 1, await factory.Operations.CountAsync());
        Assert.NotNull(await factory.Operations.FindAsync(id));

        // Once the node reaches the database again, the operation's status monitor answers with the operation, and it
        // runs like any other: on its first attempt, also when this node had claimed it at insert (it is handed back).
        ApiResponse? poll = null;
        await Eventually.WaitUntilAsync(async () =>
        {
            poll = await _client.FetchAsync(submit.Headers.Location!);
            return poll.Status is HttpStatusCode.OK or HttpStatusCode.Accepted;
        }, Deadline, () => poll?.ToString() ?? "(no answer)");
        Assert.Equal(id, poll!.Json.GetProperty("id").GetGuid());
        var done = await _client.PollUntilDoneAsync(submit.Headers.Location!, Deadline);
        Assert.Equal("succeeded", done.Json.GetProperty("status").GetString());
        Assert.Equal(1, done.Json.GetProperty("attempts").GetInt32());
    }

    [Fact]
    public async Task ASubmitThatNeverReachedTheDatabaseAndCannotBeSettledIsNotFoundAtItsLocationOnceTheDatabaseIsBack()
    {
        long before = await factory.Operations.CountAsync();

        var (submit, id) = await SubmitWhileTheDatabaseGoesAwayAsync(24, FaultMoment.BeforeTheServer);

        Assert.Equal(before, await factory.Operations.CountAsync());

        ApiResponse? poll = null;
        await Eventually.WaitUntilAsync(async () =>
        {
            poll = await _client.FetchAsync(submit.Headers.Location!);
            return poll.Status != HttpStatusCode.ServiceUnavailable;
        }, Deadline, () => poll?.ToString() ?? "(no answer)");
        ProblemAssert.IsProblem(poll!, HttpStatusCode.NotFound, "urn:pollingapi:problem:operation-not-found", id.ToString());
    }

    [Fact]
    public async Task AKeyedSubmitWhoseCommitAcknowledgementIsLostIsAnsweredAsItsOwnOperationNotAsAReplay()
    {
        string key = $"commit-outcome-{Guid.NewGuid()}";
        var broken = factory.Proxy.ArmFault(TcpProxy.Containing(key), FaultMoment.AfterTheCommit);

        var submit = await SubmitWithKeyAsync("""{"durationMs": 25}""", key);

        Assert.True(broken.IsCompleted, "The proxy never saw the insert.");
        // Its current state: settling takes long enough on a loaded machine for a worker to have run it already.
        Assert.True(submit.Status is HttpStatusCode.Accepted or HttpStatusCode.OK, submit.ToString());
        Assert.False(submit.Headers.Contains("Idempotent-Replayed"), "The request's own operation was answered as a replay.");
        var id = submit.Json.GetProperty("id").GetGuid();
        Assert.Equal([id], await IdsWithKeyAsync(key));
        Assert.True(factory.Logs.Contains(LogLevel.Warning, "Commit outcome of a submit with an idempotency key was unknown and is settled: 1 stored, 0 written again"),
            "The node did not settle the keyed insert.");

        // The client's own retry of the same request is the replay, of the same operation.
        var again = await SubmitWithKeyAsync("""{"durationMs": 25}""", key);
        Assert.True(again.Status is HttpStatusCode.Accepted or HttpStatusCode.OK, again.ToString());
        Assert.Equal(id, again.Json.GetProperty("id").GetGuid());
        Assert.Equal("true", again.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal([id], await IdsWithKeyAsync(key));
    }

    [Fact]
    public async Task ACancelWhoseCommitAcknowledgementIsLostIsSettledAndTheRunningOperationEndsCancelled()
    {
        var submit = await _client.SubmitSleepAsync("""{"durationMs": 60000}""");
        Assert.True(submit.Status == HttpStatusCode.Accepted, submit.ToString());
        var id = submit.Json.GetProperty("id").GetGuid();
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(id) == "running", Deadline);
        var broken = factory.Proxy.ArmFault(TcpProxy.Containing(id, "AND NOT cancel_requested"), FaultMoment.AfterTheCommit);

        var cancel = await _client.SendAsync(HttpMethod.Post, $"/v1/operations/{id}/cancel", null);

        Assert.True(broken.IsCompleted, "The proxy never saw the cancellation request.");
        Assert.True(cancel.Status == HttpStatusCode.Accepted, cancel.ToString());
        Assert.Equal(id, cancel.Json.GetProperty("id").GetGuid());
        Assert.True(factory.Logs.Contains(LogLevel.Warning, "Settled the commit outcome of a cancel"), "The cancel was not settled.");
        var done = await _client.PollUntilDoneAsync(submit.Headers.Location!, Deadline);
        Assert.Equal("cancelled", done.Json.GetProperty("status").GetString());
        Assert.Equal("cancelled", await factory.Operations.StatusOfAsync(id));
    }

    [Fact]
    public async Task ARetryAndADeleteWhoseCommitAcknowledgementsAreLostAnswerAsIfAcknowledged()
    {
        // Each run takes half a second, so the settled retry is answered before the run it caused is over (a run of no
        // time could fail again first, and the answer would show that, as a 200).
        var submit = await _client.SubmitSleepAsync("""{"durationMs": 500, "failPermanently": true}""");
        var id = submit.Json.GetProperty("id").GetGuid();
        var failed = await _client.PollUntilDoneAsync(submit.Headers.Location!, Deadline);
        Assert.Equal("failed", failed.Json.GetProperty("status").GetString());
        var firstCompletion = (await factory.Operations.GetAsync(id)).CompletedAt;

        var retryBroken = factory.Proxy.ArmFault(TcpProxy.Containing(id, "SET status = 'pending', attempts = 0"), FaultMoment.AfterTheCommit);
        var retry = await _client.SendAsync(HttpMethod.Post, $"/v1/operations/{id}/retry", null);
        Assert.True(retryBroken.IsCompleted, "The proxy never saw the retry.");
        Assert.True(retry.Status == HttpStatusCode.Accepted, retry.ToString());
        Assert.Equal(submit.Headers.Location, retry.Headers.Location);
        var failedAgain = await _client.PollUntilDoneAsync(submit.Headers.Location!, Deadline);
        Assert.Equal("failed", failedAgain.Json.GetProperty("status").GetString());
        var stored = await factory.Operations.GetAsync(id);
        Assert.Equal(1, stored.Attempts);
        Assert.True(stored.CompletedAt > firstCompletion, "The operation did not run again after the retry.");

        var deleteBroken = factory.Proxy.ArmFault(TcpProxy.Containing(id, "DELETE FROM operations"), FaultMoment.AfterTheCommit);
        var delete = await _client.SendAsync(HttpMethod.Delete, $"/v1/operations/{id}", null);
        Assert.True(deleteBroken.IsCompleted, "The proxy never saw the delete.");
        Assert.True(delete.Status == HttpStatusCode.NoContent, delete.ToString());
        Assert.Null(await factory.Operations.FindAsync(id));
        Assert.True(factory.Logs.Contains(LogLevel.Warning, "Settled the commit outcome of a retry"), "The retry was not settled.");
        Assert.True(factory.Logs.Contains(LogLevel.Warning, "Settled the commit outcome of a delete"), "The delete was not settled.");
    }

    [Fact]
    public async Task AWorkersCompletionWhoseCommitAcknowledgementIsLostIsReportedToTheWaitingRequest()
    {
        var broken = factory.Proxy.ArmFault(
            TcpProxy.Containing("SET status = 'succeeded', result = CAST(u.result AS jsonb)", "\"sleptMs\":26,"), FaultMoment.AfterTheCommit);

        var submit = await _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody("""{"durationMs": 26}"""),
            request => request.Headers.Add("Prefer", "wait=20"));

        Assert.True(broken.IsCompleted, "The proxy never saw the completion.");
        // Told of the stored outcome, the waiting request answers 200 at once instead of 202 after its whole wait.
        Assert.True(submit.Status == HttpStatusCode.OK, submit.ToString());
        Assert.Equal("succeeded", submit.Json.GetProperty("status").GetString());
        JsonAssert.Equivalent("""{"sleptMs":26,"attempt":1}""", submit.Json.GetProperty("result"));
        var id = submit.Json.GetProperty("id").GetGuid();
        var stored = await factory.Operations.GetAsync(id);
        Assert.Equal("succeeded", stored.Status);
        Assert.Equal(1, stored.Attempts);
        Assert.True(factory.Logs.Contains(LogLevel.Warning, "Commit outcome of a batch of 1 completions was unknown and is settled: 1 stored, 0 written again"),
            "The completion was not settled by reading it back.");
        Assert.False(factory.Logs.Contains(LogLevel.Warning, "lost its lease"), "A stored completion was reported as a lost lease.");
    }

    /// <summary>
    /// Submits a sleep whose insert the proxy breaks at <paramref name="moment"/>, and keeps the database out of reach
    /// for longer than the node may spend settling; asserts the answer is a commit-outcome-unknown naming the operation.
    /// </summary>
    private async Task<(ApiResponse Submit, Guid Id)> SubmitWhileTheDatabaseGoesAwayAsync(int durationMs, FaultMoment moment)
    {
        var broken = factory.Proxy.ArmFault(TcpProxy.Containing($"\"durationMs\":{durationMs},"), moment, factory.Proxy.SwitchOff);
        ApiResponse submit;
        try
        {
            submit = await _client.SubmitSleepAsync($$"""{"durationMs": {{durationMs}}}""");
        }
        finally
        {
            factory.Proxy.SwitchOn();
        }

        Assert.True(broken.IsCompleted, "The proxy never saw the insert.");
        var problem = ProblemAssert.IsProblem(submit, HttpStatusCode.ServiceUnavailable, CommitOutcomeUnknown, PollingApiClient.SleepRoute);
        Assert.Contains("404 means it was not stored", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        var id = problem.GetProperty("operationId").GetGuid();
        Assert.EndsWith($"/v1/operations/{id}", submit.Headers.Location!.ToString(), StringComparison.Ordinal);
        Assert.Equal(submit.Headers.Location!.ToString(), submit.Headers.GetValues("Operation-Location").Single());
        Assert.True(RetryAfter.Seconds(submit) >= 1);
        return (submit, id);
    }

    private Task<ApiResponse> SubmitWithKeyAsync(string json, string key) =>
        _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody(json),
            request => request.Headers.TryAddWithoutValidation("Idempotency-Key", key));

    private async Task<Guid[]> IdsWithKeyAsync(string key)
    {
        await using var connection = new NpgsqlConnection(factory.DatabaseConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT id FROM operations WHERE idempotency_key = @key", connection);
        command.Parameters.AddWithValue("key", key);
        var ids = new List<Guid>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            ids.Add(reader.GetGuid(0));
        }

        return [.. ids];
    }
}
