using PollingApi.Operations.Tests.Infrastructure;
using PollingApi.Operations.Model;

namespace PollingApi.Operations.Tests;

public sealed class ShutdownTests
{
    [Fact]
    public async Task StoppingLetsARunningHandlerFinishWithinTheTimeout()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "graceful",
            new Dictionary<string, string?> { ["Operations:ShutdownTimeout"] = "00:00:30" });
        var submitted = await host.SubmitAsync(new TestRequest(Block: true), TimeProvider.System.GetUtcNow().UtcDateTime);

        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(() => Task.FromResult(host.Executions.Started.Contains(submitted.Id)),
            TimeSpan.FromSeconds(10));

        await stop.CancelAsync();
        var later = await host.SubmitAsync(new TestRequest(), TimeProvider.System.GetUtcNow().UtcDateTime);
        Assert.False(pump.IsCompleted, "the pump waits for its running handler");
        host.Executions.Gate.SetResult();
        await pump.WaitAsync(TimeSpan.FromSeconds(10));

        var row = await host.ReadAsync(submitted.Id);
        Assert.Equal(OperationStatus.Succeeded, row.Status);
        Assert.Null(row.LockedBy);
        // Nothing new was claimed after the stop.
        Assert.Equal(OperationStatus.Pending, (await host.ReadAsync(later.Id)).Status);
        Assert.Equal(0, (await host.ReadAsync(later.Id)).Attempts);
    }

    [Fact]
    public async Task StoppingCancelsHandlersStillRunningAtTheTimeoutAndReleasesTheirLeases()
    {
        await using var host = await EngineHost.StartAsync(await PostgresServer.CreateDatabaseAsync(), "impatient",
            new Dictionary<string, string?> { ["Operations:ShutdownTimeout"] = "00:00:00.200" });
        var now = TimeProvider.System.GetUtcNow().UtcDateTime;
        var first = await host.SubmitAsync(new TestRequest(Block: true), now);
        var second = await host.SubmitAsync(new TestRequest(Block: true), now);

        using var stop = new CancellationTokenSource();
        var pump = host.Worker.RunAsync(stop.Token);
        await Eventually.WaitUntilAsync(() => Task.FromResult(host.Executions.Started.Count == 2),
            TimeSpan.FromSeconds(10));

        await stop.CancelAsync();
        await pump.WaitAsync(TimeSpan.FromSeconds(10));

        foreach (var id in new[] { first.Id, second.Id })
        {
            var row = await host.ReadAsync(id);
            Assert.Equal(OperationStatus.Pending, row.Status);
            Assert.Null(row.LockedBy);
            Assert.Null(row.LockedUntil);
            // The interrupted attempt is not counted against the operation.
            Assert.Equal(0, row.Attempts);
        }

        Assert.Equal(0, await host.ScalarAsync<long>("SELECT count(*) FROM operations WHERE locked_by IS NOT NULL"));
        Assert.Equal(0, host.Worker.RunningCount);
    }
}
