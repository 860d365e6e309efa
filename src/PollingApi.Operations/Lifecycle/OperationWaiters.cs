using PollingApi.Operations.Storage;
using PollingApi.Operations.Telemetry;

namespace PollingApi.Operations.Lifecycle;

/// <summary>
/// The requests of this node that wait for operations to finish (long-polls and <c>Prefer: wait</c>). They wait
/// on a task here, not in a query loop: one notification per completion, from the local worker or from the
/// node's single PostgreSQL listener, wakes every waiter of that operation.
/// </summary>
internal sealed class OperationWaiters
{
    private readonly Dictionary<Guid, List<TaskCompletionSource<OperationRow?>>> _waiting = [];
    private readonly Lock _lock = new();

    public OperationWaiters(OperationMetrics metrics) =>
        metrics.Meter.CreateObservableGauge("pollingapi.waiting_requests", () => Count, "{request}",
            "Long-polls and Prefer: wait requests waiting on this node now.");

    /// <summary>How many requests are waiting now.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _waiting.Values.Sum(list => list.Count);
            }
        }
    }

    /// <summary>
    /// Starts waiting for <paramref name="id"/>. Register before reading the operation, so that a completion
    /// between the read and the wait is not missed.
    /// </summary>
    public Registration Register(Guid id)
    {
        var signal = new TaskCompletionSource<OperationRow?>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (!_waiting.TryGetValue(id, out var list))
            {
                list = [];
                _waiting[id] = list;
            }

            list.Add(signal);
        }

        return new Registration(this, id, signal);
    }

    /// <summary>
    /// The operation may have changed: wake its waiters. With its <paramref name="current"/> row (as the statement that
    /// changed it returned it) they answer with that; without, they read it again.
    /// </summary>
    public void Notify(Guid id, OperationRow? current = null)
    {
        List<TaskCompletionSource<OperationRow?>>? list;
        lock (_lock)
        {
            _waiting.Remove(id, out list);
        }

        list?.ForEach(signal => signal.TrySetResult(current));
    }

    /// <summary>Wakes every waiter, e.g. after the listener reconnected and may have missed notifications.</summary>
    public void NotifyAll()
    {
        List<TaskCompletionSource<OperationRow?>> all;
        lock (_lock)
        {
            all = _waiting.Values.SelectMany(list => list).ToList();
            _waiting.Clear();
        }

        all.ForEach(signal => signal.TrySetResult(null));
    }

    private void Remove(Guid id, TaskCompletionSource<OperationRow?> signal)
    {
        lock (_lock)
        {
            if (_waiting.TryGetValue(id, out var list) && list.Remove(signal) && list.Count == 0)
            {
                _waiting.Remove(id);
            }
        }
    }

    /// <summary>One waiting request; dispose it when done waiting.</summary>
    public sealed class Registration : IDisposable
    {
        private readonly OperationWaiters _owner;
        private readonly Guid _id;
        private readonly TaskCompletionSource<OperationRow?> _signal;

        internal Registration(OperationWaiters owner, Guid id, TaskCompletionSource<OperationRow?> signal)
        {
            _owner = owner;
            _id = id;
            _signal = signal;
        }

        /// <summary>
        /// Waits until notified or until <paramref name="timeout"/>. A cancelled request stops waiting with an
        /// <see cref="OperationCanceledException"/>.
        /// </summary>
        public async Task<WakeUp> WaitAsync(TimeSpan timeout, TimeProvider timeProvider, CancellationToken cancellationToken) =>
            await _signal.Task.CompletesWithinAsync(timeout, timeProvider, cancellationToken).ConfigureAwait(false)
                ? new WakeUp(true, await _signal.Task.ConfigureAwait(false))
                : new WakeUp(false, null);

        public void Dispose() => _owner.Remove(_id, _signal);
    }
}

/// <summary>How a wait ended: <see cref="Notified"/> or timed out, and the operation's row if the notifier had it.</summary>
internal readonly record struct WakeUp(bool Notified, OperationRow? Current);
