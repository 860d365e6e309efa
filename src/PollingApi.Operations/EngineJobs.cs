using Microsoft.Extensions.Hosting;
using PollingApi.Operations.Storage;
using Quartz;

namespace PollingApi.Operations;

/// <summary>A job of the engine's Quartz scheduler and how often it fires.</summary>
internal sealed record EngineJob(JobKey Key, TimeSpan Interval, TimeSpan FirstDelay);

/// <summary>The engine's jobs: registered with Quartz as durable jobs, and triggered by <see cref="EngineJobTriggers"/>.</summary>
internal sealed class EngineJobs
{
    private readonly List<EngineJob> _jobs = [];

    public IReadOnlyList<EngineJob> All => _jobs;

    /// <summary>Registers <typeparamref name="TJob"/> to fire every <paramref name="interval"/>, first after <paramref name="firstDelay"/>.</summary>
    public void Add<TJob>(IQuartzBuilder quartz, JobKey key, TimeSpan interval, TimeSpan firstDelay = default)
        where TJob : IJob
    {
        quartz.AddJob<TJob>(job => job.WithIdentity(key).StoreDurably());
        _jobs.Add(new EngineJob(key, interval, firstDelay));
    }
}

/// <summary>
/// Schedules the triggers of the <see cref="EngineJobs"/> once the node has measured the database's clock. Quartz runs on
/// the engine's clock, and a trigger built before the first measurement would carry the machine's time: on a machine a
/// minute ahead of the database, its first firing (the worker's start among them) would come a minute late.
/// </summary>
internal sealed class EngineJobTriggers(ISchedulerFactory schedulers, EngineJobs jobs, DatabaseClock clock, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await clock.WhenSynchronisedAsync(stoppingToken).ConfigureAwait(false);
            var scheduler = await schedulers.GetScheduler(stoppingToken).ConfigureAwait(false);
            var now = time.GetUtcNow();
            foreach (var job in jobs.All)
            {
                var trigger = TriggerBuilder.Create(time)
                    .ForJob(job.Key)
                    .StartAt(now + job.FirstDelay)
                    .WithSimpleSchedule(s => s.WithInterval(job.Interval).RepeatForever()
                        .WithMisfireInstruction(SimpleTriggerMisfireInstruction.NextWithRemainingCount))
                    .Build();
                await scheduler.ScheduleJob(trigger, default(ScheduleJobOptions), stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopped before the clock was measured: nothing to schedule.
        }
        catch (SchedulerException) when (stoppingToken.IsCancellationRequested)
        {
            // The scheduler shut down while the triggers were being scheduled.
        }
    }
}
