using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PollingApi.Tests.Infrastructure;
using PollingApi.Operations.Storage;

namespace PollingApi.Tests;

/// <summary>Polls of a finished operation are answered from the node's memory, and a retry or delete anywhere is seen.</summary>
public sealed class FinishedOperationCacheTests(ApiOnlyPollingApiFactory factory) : IClassFixture<ApiOnlyPollingApiFactory>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task PollingAFinishedOperationAgainCostsNoQueryAndAnswersTheSame()
    {
        var id = await FinishedOperationAsync("succeeded");
        var first = await _client.FetchAsync($"/v1/operations/{id}");
        Assert.Equal(HttpStatusCode.OK, first.Status);

        using var counter = new DatabaseCommandCounter(DatabaseName);
        var answers = new List<ApiResponse>();
        for (int i = 0; i < 200; i++)
        {
            answers.Add(await _client.FetchAsync($"/v1/operations/{id}"));
        }

        // Reading the row would be 200 queries. The node's own maintenance may run meanwhile (lease rescue every
        // second in these tests), so allow for a few seconds of it.
        Assert.InRange(counter.Count, 0, 20);
        Assert.All(answers, answer =>
        {
            Assert.Equal(HttpStatusCode.OK, answer.Status);
            Assert.Equal(first.Header("ETag"), answer.Header("ETag"));
            Assert.Equal(first.Json.GetRawText(), answer.Json.GetRawText());
        });
        Assert.Equal("succeeded", answers[^1].Json.GetProperty("status").GetString());
        Assert.Equal(1, answers[^1].Json.GetProperty("result").GetProperty("sleptMs").GetInt32());
    }

    [Fact]
    public async Task DeletingOrRetryingOnThisNodeIsSeenByTheNextPoll()
    {
        var deleted = await FinishedOperationAsync("succeeded");
        Assert.Equal(HttpStatusCode.OK, (await _client.FetchAsync($"/v1/operations/{deleted}")).Status);
        Assert.Equal(HttpStatusCode.NoContent, (await _client.SendAsync(HttpMethod.Delete, $"/v1/operations/{deleted}", null)).Status);
        ProblemAssert.IsProblem(await _client.FetchAsync($"/v1/operations/{deleted}"), HttpStatusCode.NotFound,
            "urn:pollingapi:problem:operation-not-found", $"/v1/operations/{deleted}");

        var retried = await FinishedOperationAsync("failed");
        Assert.Equal("failed", (await _client.FetchAsync($"/v1/operations/{retried}")).Json.GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.Accepted, (await _client.SendAsync(HttpMethod.Post, $"/v1/operations/{retried}/retry", null)).Status);
        var afterRetry = await _client.FetchAsync($"/v1/operations/{retried}");
        Assert.Equal(HttpStatusCode.Accepted, afterRetry.Status);
        Assert.Equal("pending", afterRetry.Json.GetProperty("status").GetString());
        Assert.Equal(0, afterRetry.Json.GetProperty("attempts").GetInt32());
    }

    [Fact]
    public async Task ADeleteOrRetryOnAnotherNodeReachesThisNodeThroughTheNotificationItsStatementSends()
    {
        var deleted = await FinishedOperationAsync("succeeded");
        var retried = await FinishedOperationAsync("failed");
        Assert.Equal(HttpStatusCode.OK, (await _client.FetchAsync($"/v1/operations/{deleted}")).Status);
        Assert.Equal(HttpStatusCode.OK, (await _client.FetchAsync($"/v1/operations/{retried}")).Status);

        // Another node's store, on the same database: its statements notify every node as they commit.
        await using (var otherNode = NpgsqlDataSource.Create(factory.DatabaseConnectionString))
        {
            var store = new Operations.Storage.OperationStore(otherNode);
            Assert.True(await store.DeleteTerminalAsync(deleted, "dev", CancellationToken.None));
            var failed = await store.FindAsync(retried, "dev", CancellationToken.None);
            Assert.NotNull(await store.RetryAsync(retried, "dev", failed!.Version, TimeProvider.System.GetUtcNow().UtcDateTime, CancellationToken.None));
        }

        await Eventually.WaitUntilAsync(async () => (await _client.FetchAsync($"/v1/operations/{deleted}")).Status == HttpStatusCode.NotFound, Deadline);
        await Eventually.WaitUntilAsync(async () =>
        {
            var poll = await _client.FetchAsync($"/v1/operations/{retried}");
            return poll.Status == HttpStatusCode.Accepted && poll.Json.GetProperty("status").GetString() == "pending";
        }, Deadline);
    }

    [Fact]
    public async Task ACopyReadBeforeAForgetIsNeverKeptAfterIt()
    {
        var cache = factory.Services.GetRequiredService<FinishedOperationCache>();
        var id = await FinishedOperationAsync("succeeded");
        var row = await factory.Services.GetRequiredService<Operations.Storage.OperationStore>()
            .FindAsync(id, "dev", CancellationToken.None);
        Assert.NotNull(row);
        var now = TimeProvider.System.GetUtcNow().UtcDateTime;

        long before = cache.Generation;
        cache.Forget(Guid.CreateVersion7());
        cache.Offer(row, before);
        Assert.False(cache.TryGet(id, "dev", now, out _), "a forget happened between the read and the offer");

        cache.Offer(row, cache.Generation);
        Assert.True(cache.TryGet(id, "dev", now, out var cached));
        Assert.Equal(row, cached);
        Assert.False(cache.TryGet(id, "someone-else", now, out _), "a copy is served to its owner only");
        Assert.False(cache.TryGet(id, "dev", now + TimeSpan.FromDays(7), out _), "a copy old enough to be purged is not served");

        cache.Offer(row with { Status = "running", CompletedAt = null }, cache.Generation);
        Assert.True(cache.TryGet(id, "dev", now, out var stillFinished), "an unfinished row is never offered over a finished one");
        Assert.Equal("succeeded", stillFinished.Status);
    }

    private string DatabaseName => new NpgsqlConnectionStringBuilder(factory.DatabaseConnectionString).Database!;

    private async Task<Guid> FinishedOperationAsync(string status)
    {
        // Copies are kept only once the node's listener is connected.
        var cache = factory.Services.GetRequiredService<FinishedOperationCache>();
        await Eventually.WaitUntilAsync(() => Task.FromResult(cache.IsServing), Deadline);
        var submitted = await _client.SubmitSleepAsync("""{"durationMs": 1}""");
        Assert.Equal(HttpStatusCode.Accepted, submitted.Status);
        var id = submitted.Json.GetProperty("id").GetGuid();
        await factory.Operations.FinishAsync(id, status);
        return id;
    }
}
