using Microsoft.Extensions.Hosting;
using Quartz;

namespace PollingApi.Operations.Processing;

/// <summary>
/// Hosts the node's <see cref="OperationPump"/> on a Quartz thread for the life of the process. Its trigger
/// repeats, so a pump that ended unexpectedly is started again; only one runs at a time.
/// </summary>
[DisallowConcurrentExecution]
public sealed class OperationPumpJob(OperationPump pump, IHostApplicationLifetime lifetime) : IJob
{
    public static readonly JobKey Key = new("operation-pump", "operations");

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
    {
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lifetime.ApplicationStopping);
        if (stopping.IsCancellationRequested)
        {
            return;
        }

        await pump.RunAsync(stopping.Token).ConfigureAwait(false);
    }
}
