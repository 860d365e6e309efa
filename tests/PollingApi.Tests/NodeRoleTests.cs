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
