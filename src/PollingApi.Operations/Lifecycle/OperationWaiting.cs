using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Lifecycle;

/// <summary>
/// Holds a request until its operation is done or its time is up (long-polls and <c>Prefer: wait</c>), reading the
/// operation again only when a signal says it changed.
/// </summary>
internal sealed class OperationWaiting(OperationStore store, OperationWaiters waiters, TimeProvider timeProvider)
{
    /// <summary>Starts listening for <paramref name="id"/>: register before reading it, so a change right after the read is not missed.</summary>
    public OperationWaiters.Registration Register(Guid id) => waiters.Register(id);

    /// <summary>
    /// Waits until the operation is done or <paramref name="waitFor"/> has passed. Returns the last row read (null if
    /// it was deleted meanwhile).
    /// </summary>
    public async Task<OperationRow?> UntilDoneAsync(Guid id, OperationRow row, OperationWaiters.Registration registration, TimeSpan waitFor,
        CancellationToken cancellationToken)
    {
        var deadline = timeProvider.GetUtcNow() + waitFor;
        var waiter = registration;
        try
        {
            while (true)
            {
                var remaining = deadline - timeProvider.GetUtcNow();
                if (remaining <= TimeSpan.Zero)
                {
                    return row;
                }

                var wakeUp = await waiter.WaitAsync(remaining, timeProvider, cancellationToken).ConfigureAwait(false);
                if (!wakeUp.Notified)
                {
                    return row;
                }

                // This node's worker finished it and handed over the row its completion returned: nothing to read.
                if (wakeUp.Current is { } finished && OperationStatus.IsTerminal(finished.Status))
                {
                    return finished;
                }

                // Woken: register again before reading, so a completion right after the read is not missed.
                if (!ReferenceEquals(waiter, registration))
                {
                    waiter.Dispose();
                }

                waiter = waiters.Register(id);
                // The caller was shown this operation already: whoever owns it, it is theirs to see.
                var current = await store.FindAsync(id, owner: null, cancellationToken).ConfigureAwait(false);
                if (current is null || OperationStatus.IsTerminal(current.Status))
                {
                    return current;
                }

                row = current;
            }
        }
        finally
        {
            if (!ReferenceEquals(waiter, registration))
            {
                waiter.Dispose();
            }
        }
    }
}
