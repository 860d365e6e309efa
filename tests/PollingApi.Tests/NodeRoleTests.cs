using Microsoft.Extensions.DependencyInjection;
using PollingApi.Tests.Infrastructure;
using Quartz;
using PollingApi.Operations.Worker;
using PollingApi.Operations.Lifecycle;

namespace PollingApi.Tests;

/// <summary>Which background jobs a node schedules for its role.</summary>
public sealed class WorkerNodeJobTests(WorkerOnlyPollingApiFactory factory) : IClassFixture<WorkerOnlyPollingApiFactory>
{
    [Fact]
    public async Task AWorkerOnlyNodeRunsThePumpButRefreshesNoRetryAfterStatistics()
    {
        _ = factory.CreateClient();
        var scheduler = await factory.Services.GetRequiredService<ISchedulerFactory>().GetScheduler();

        Assert.True(await scheduler.Exists(OperationWorkerJob.Key));
        Assert.True(await scheduler.Exists(LeaseRescueJob.Key));
        Assert.False(await scheduler.Exists(StatisticsRefreshJob.Key), "statistics only feed the Retry-After of API answers");
    }

    [Fact]
    public async Task TheJobsAreTriggeredOnceTheDatabaseClockIsMeasured()
    {
        _ = factory.CreateClient();
        var scheduler = await factory.Services.GetRequiredService<ISchedulerFactory>().GetScheduler();

        // Triggered after the clock's first measurement (a trigger built before it would carry the machine's time).
        await Eventually.WaitUntilAsync(async () => (await scheduler.GetTriggersOfJob(OperationWorkerJob.Key)).Count == 1, TimeSpan.FromSeconds(30));
        var worker = Assert.Single(await scheduler.GetTriggersOfJob(OperationWorkerJob.Key));
        var rescue = Assert.Single(await scheduler.GetTriggersOfJob(LeaseRescueJob.Key));
        Assert.IsType<ISimpleTrigger>(worker, exactMatch: false);
        Assert.Equal(TimeSpan.FromSeconds(5), ((ISimpleTrigger)worker).RepeatInterval);
        // Started at the (measured) now, not a clock step later.
        var now = factory.Services.GetRequiredService<TimeProvider>().GetUtcNow();
        Assert.InRange(worker.StartTimeUtc, now - TimeSpan.FromMinutes(1), now);
        Assert.InRange(rescue.StartTimeUtc, now - TimeSpan.FromMinutes(1), now);
        // Its first firing starts the worker, which runs for the life of the node.
        await Eventually.WaitUntilAsync(async () => await scheduler.GetTriggerState(worker.Key) == TriggerState.Executing, TimeSpan.FromSeconds(30));
    }
}

public sealed class ApiNodeJobTests(ApiOnlyPollingApiFactory factory) : IClassFixture<ApiOnlyPollingApiFactory>
{
    [Fact]
    public async Task AnApiOnlyNodeRefreshesRetryAfterStatisticsButRunsNoPump()
    {
        _ = factory.CreateClient();
        var scheduler = await factory.Services.GetRequiredService<ISchedulerFactory>().GetScheduler();

        Assert.True(await scheduler.Exists(StatisticsRefreshJob.Key));
        Assert.True(await scheduler.Exists(LeaseRescueJob.Key));
        Assert.False(await scheduler.Exists(OperationWorkerJob.Key));
    }
}
