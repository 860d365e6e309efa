using Microsoft.Extensions.Hosting;
using PollingApi.Operations.Storage;
using Quartz;

namespace PollingApi.Operations.Worker;

/// <summary>
/// Hosts the node's <see cref="OperationWorker"/> on a Quartz thread for the life of the process. Its trigger
/// repeats, so a worker that ended unexpectedly is started again; only one runs at a time. The worker starts once the
/// node has reached its database and migrated it (<see cref="DatabaseStartupGate"/>).
/// </summary>
[DisallowConcurrentExecution]
internal sealed class OperationWorkerJob(OperationWorker worker, DatabaseStartupGate startup, IHostApplicationLifetime lifetime) : IJob
{
    public static readonly JobKey Key = new("operation-pump", "operations");

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
    {
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lifetime.ApplicationStopping);
        try
        {
            await startup.WaitUntilOpenAsync(stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        if (stopping.IsCancellationRequested)
        {
            return;
        }

        await worker.RunAsync(stopping.Token).ConfigureAwait(false);
    }
}
