using System.Text.Json;
using Microsoft.Extensions.Options;
using PollingApi.Operations.Tests.Infrastructure;
using PollingApi.Operations.Model;
using PollingApi.Operations.Worker;

namespace PollingApi.Operations.Tests;

public sealed class RetryTests
{
    [Fact]
    public void BackoffCapsDoubleFromTheBaseDelayUpToTheMaximum()
    {
        var options = Options.Create(new OperationsOptions
        {
            RetryBaseDelay = TimeSpan.FromSeconds(1),
            RetryMaxDelay = TimeSpan.FromSeconds(10),
        });
        var backoff = new RetryBackoff(options, new FixedRandom(0.999999));

        Assert.Equal(TimeSpan.FromSeconds(1), backoff.Cap(1));
        Assert.Equal(TimeSpan.FromSeconds(2), backoff.Cap(2));
        Assert.Equal(TimeSpan.FromSeconds(4), backoff.Cap(3));
        Assert.Equal(TimeSpan.FromSeconds(8), backoff.Cap(4));
        Assert.Equal(TimeSpan.FromSeconds(10), backoff.Cap(5));
        Assert.Equal(TimeSpan.FromSeconds(10), backoff.Cap(100));
    }

    [Fact]
    public void BackoffIsFullJitterBetweenZeroAndTheCap()
    {
        var options = Options.Create(new OperationsOptions { RetryBaseDelay = TimeSpan.FromSeconds(1), RetryMaxDelay = TimeSpan.FromMinutes(5) });
        Assert.Equal(TimeSpan.Zero, new RetryBackoff(options, new FixedRandom(0)).Delay(3));
        Assert.Equal(TimeSpan.FromSeconds(2), new RetryBackoff(options, new FixedRandom(0.5)).Delay(3));

        var random = new RetryBackoff(options, new Random(42));
        var delays = Enumerable.Range(0, 1000).Select(_ => random.Delay(4)).ToList();
        Assert.All(delays, d => Assert.InRange(d, TimeSpan.Zero, TimeSpan.FromSeconds(8)));
        // Jitter spreads retries over the whole window rather than bunching them at the cap.
        Assert.InRange(delays.Average(d => d.TotalSeconds), 3.5, 4.5);
    }

    [Fact]
    public async Task ATransientFailureIsRetriedAfterTheBackoffThePolicyGives()
    {
        var time = FakeTime.Create();
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "retrier",
            timeProvider: time, random: new FixedRandom(0.5));
        var start = time.GetUtcNow().UtcDateTime;
        var submitted = await host.SubmitAsync(new TestRequest(FailTimes: 2), start);

        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        host.WakeSignal.Wake();

        // Attempt 1 fails: retry due after half the first cap (1 s).
        await WaitForAsync(host, submitted.Id, row => row.Status == OperationStatus.Pending && row.Attempts == 1);
        var afterFirst = await host.ReadAsync(submitted.Id);
        Assert.Equal(start.AddMilliseconds(500), afterFirst.NextAttemptAt);
        Assert.Null(afterFirst.Error);
        Assert.Empty(await host.Attempts.ClaimAsync("someone-else", 10, start.AddMilliseconds(499), start.AddSeconds(30), CancellationToken.None));

        // Attempt 2 fails: half the second cap (2 s).
        time.Advance(TimeSpan.FromMilliseconds(500));
        host.WakeSignal.Wake();
        await WaitForAsync(host, submitted.Id, row => row.Status == OperationStatus.Pending && row.Attempts == 2);
        Assert.Equal(start.AddMilliseconds(500).AddSeconds(1), (await host.ReadAsync(submitted.Id)).NextAttemptAt);

        // Attempt 3 succeeds.
        time.Advance(TimeSpan.FromSeconds(1));
        host.WakeSignal.Wake();
        await WaitForAsync(host, submitted.Id, row => row.Status == OperationStatus.Succeeded);
        await stop.CancelAsync();
        await pump;

        var done = await host.ReadAsync(submitted.Id);
        Assert.Equal(3, done.Attempts);
        Assert.Equal(time.GetUtcNow().UtcDateTime, done.CompletedAt);
        using var result = JsonDocument.Parse(done.Result!);
        Assert.Equal(3, result.RootElement.GetProperty("attempt").GetInt32());
    }

    [Fact]
    public async Task AnOperationWhoseEveryAttemptFailsEndsFailedWithoutExceptionText()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "exhaust",
            new Dictionary<string, string?> { ["Operations:RetryBaseDelay"] = "00:00:00.010", ["Operations:RetryMaxDelay"] = "00:00:00.020" });
        var submitted = await host.SubmitAsync(new TestRequest(FailTimes: 100), TimeProvider.System.GetUtcNow().UtcDateTime, maxAttempts: 3);

        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        await WaitForAsync(host, submitted.Id, row => row.Status == OperationStatus.Failed);
        await stop.CancelAsync();
        await pump;

        var row = await host.ReadAsync(submitted.Id);
        Assert.Equal(3, row.Attempts);
        Assert.Equal(3, host.Executions.Counts[submitted.Id]);
        using var error = JsonDocument.Parse(row.Error!);
        Assert.Equal(ProblemTypes.AttemptsExhausted, error.RootElement.GetProperty("type").GetString());
        Assert.DoesNotContain("internal details", row.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", row.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task APermanentFailureFailsAtOnceWithTheHandlersProblem()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "permanent");
        var submitted = await host.SubmitAsync(new TestRequest(FailPermanently: true), TimeProvider.System.GetUtcNow().UtcDateTime);

        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        await WaitForAsync(host, submitted.Id, row => row.Status == OperationStatus.Failed);
        await stop.CancelAsync();
        await pump;

        var row = await host.ReadAsync(submitted.Id);
        Assert.Equal(1, row.Attempts);
        Assert.Null(row.Result);
        using var error = JsonDocument.Parse(row.Error!);
        Assert.Equal("urn:test:permanent", error.RootElement.GetProperty("type").GetString());
        Assert.Equal("Told to fail.", error.RootElement.GetProperty("title").GetString());
        Assert.Equal("The test asked for it.", error.RootElement.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task AnOperationOfAnUnregisteredKindFailsWithUnknownKind()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "unknown");
        var row = (await host.Store.InsertAsync(new Storage.NewOperation(Guid.CreateVersion7(), "default", "no.such.kind", "{}", 5, null),
            TimeProvider.System.GetUtcNow().UtcDateTime, CancellationToken.None))!;

        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        await WaitForAsync(host, row.Id, r => r.Status == OperationStatus.Failed);
        await stop.CancelAsync();
        await pump;

        using var error = JsonDocument.Parse((await host.ReadAsync(row.Id)).Error!);
        Assert.Equal(ProblemTypes.UnknownKind, error.RootElement.GetProperty("type").GetString());
    }

    private static Task WaitForAsync(EngineHost host, Guid id, Func<Storage.OperationRow, bool> condition) =>
        Eventually.WaitUntilAsync(async () => condition(await host.ReadAsync(id)), TimeSpan.FromSeconds(20));
}
