using System.Threading.Channels;

namespace PollingApi.Operations.Worker;

/// <summary>
/// Wakes the local worker pump at once when something may be claimable: a submit on this node,
/// a handler slot that became free. Signals coalesce; a pump that is busy sees one pending wake-up.
/// </summary>
internal sealed class OperationWakeSignal
{
    private readonly Channel<bool> _channel = Channel.CreateBounded<bool>(
        new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });

    public void Wake() => _channel.Writer.TryWrite(true);

    /// <summary>Waits until woken or until <paramref name="timeout"/> passes.</summary>
    public async Task WaitAsync(TimeSpan timeout, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        if (_channel.Reader.TryRead(out _))
        {
            return;
        }

        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var timer = timeProvider.CreateTimer(static state => ((CancellationTokenSource)state!).Cancel(), timeoutSource,
            timeout, Timeout.InfiniteTimeSpan);
        try
        {
            await _channel.Reader.ReadAsync(timeoutSource.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The poll interval passed without a wake-up: look for due work anyway.
        }
    }
}
