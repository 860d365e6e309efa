using PollingApi.Operations.Storage;
using PollingApi.Operations.Worker;

namespace PollingApi.Operations.Lifecycle;

/// <summary>
/// The one fan-out of "an operation changed". Every state change on this node goes through it (the worker's outcomes,
/// lease rescue, submit, cancel, retry, delete), and so does every change heard from other nodes: it tells the
/// requests waiting here, this node's worker and finished-operation cache, and (for changes made here) the other
/// nodes, through <see cref="OperationNotifier"/>. This is where whatever else wants to hear of state changes attaches.
/// </summary>
internal sealed class OperationSignals(
    OperationWaiters waiters,
    OperationWatchers watchers,
    OperationNotifier notifier,
    FinishedOperationCache finishedOperations,
    HandlerSlots slots,
    RunningHandlers running) : IOperationSignals
{
    /// <summary>An operation reached a terminal status here; <paramref name="row"/> is its stored state when at hand.</summary>
    public void Finished(Guid id, OperationRow? row = null)
    {
        waiters.Notify(id, row);
        watchers.Notify(id);
        notifier.Done(id);
    }

    /// <summary>An operation changed here without finishing: claimed, progress reported, or back to pending for a retry.</summary>
    public void Changed(Guid id)
    {
        watchers.Notify(id);
        notifier.Changed(id);
    }

    /// <summary>Work became due here (stored pending, or returned to pending).</summary>
    public void Pending()
    {
        slots.NotePending();
        notifier.Pending();
    }

    /// <summary>
    /// A finished operation was retried or deleted here. The retry and delete statements notify the other nodes
    /// themselves, in their transaction; this node's cached copy goes now.
    /// </summary>
    public void Forgotten(Guid id)
    {
        finishedOperations.Forget(id);
        watchers.Notify(id);
    }

    /// <summary>Cancellation of a running operation was requested here: its handler's token fires, here or on the node that runs it.</summary>
    public void CancelRequested(Guid id)
    {
        watchers.Notify(id);
        if (!running.RequestCancel(id))
        {
            notifier.CancelRequested(id);
        }
    }

    /// <summary>Another node finished an operation.</summary>
    public void FinishedElsewhere(Guid id)
    {
        waiters.Notify(id);
        watchers.Notify(id);
    }

    /// <summary>Another node changed an operation without finishing it.</summary>
    public void ChangedElsewhere(Guid id) => watchers.Notify(id);

    /// <summary>Another node stored or returned work to pending.</summary>
    public void PendingElsewhere() => slots.NotePending();

    /// <summary>Another node retried or deleted a finished operation.</summary>
    public void ForgottenElsewhere(Guid id)
    {
        finishedOperations.Forget(id);
        watchers.Notify(id);
    }

    /// <summary>Another node asked for the cancellation of an operation; it may be running here.</summary>
    public void CancelRequestedElsewhere(Guid id)
    {
        running.RequestCancel(id);
        watchers.Notify(id);
    }

    /// <summary>
    /// The node may have missed changes (its listener was away and is back): waiting requests read their operation
    /// again, and the worker looks for work.
    /// </summary>
    public void MayHaveMissedChanges()
    {
        waiters.NotifyAll();
        watchers.NotifyAll();
        slots.NotePending();
    }
}
