using Microsoft.Extensions.Options;
using PollingApi.Operations.Model;

namespace PollingApi.Operations.Worker;

/// <summary>What every part of a node's worker needs: which node it is, its settings and the clock.</summary>
internal sealed class WorkerContext(NodeIdentity node, IOptions<OperationsOptions> options, TimeProvider timeProvider)
{
    private static readonly TimeSpan MaxDatabaseBackoff = TimeSpan.FromSeconds(5);

    public string NodeId => node.Id;

    public OperationsOptions Options { get; } = options.Value;

    public TimeProvider Time => timeProvider;

    public DateTime Now() => timeProvider.GetUtcNow().UtcDateTime;

    /// <summary>The next wait after a database failure: 100 ms, doubling, up to 5 s.</summary>
    public static TimeSpan NextDatabaseBackoff(TimeSpan previous) =>
        previous == TimeSpan.Zero ? TimeSpan.FromMilliseconds(100) : TimeSpan.FromTicks(Math.Min(previous.Ticks * 2, MaxDatabaseBackoff.Ticks));

    /// <summary>Waits, ending early (without throwing) when <paramref name="cancellationToken"/> fires.</summary>
    public Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken) =>
        Task.Delay(delay, timeProvider, cancellationToken).ContinueWith(static _ => { }, CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    public TimeSpan Remaining(DateTimeOffset until)
    {
        var remaining = until - timeProvider.GetUtcNow();
        return remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero;
    }
}
