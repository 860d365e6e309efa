using PollingApi.Operations.Telemetry;

namespace PollingApi.Operations.Lifecycle;

/// <summary>
/// The event streams of this node that follow operations (<c>GET /v1/operations/{id}/events</c> and the filtered
/// stream). Unlike the long-polls, they hear of every change, not only the end: claimed, progress, back to pending,
/// cancellation requested, finished, retried, deleted. A stream registers, reads, sends what changed and registers
/// again; while nothing changes it costs no query at all.
/// </summary>
internal sealed class OperationWatchers
{
    private readonly Dictionary<Guid, List<TaskCompletionSource>> _watching = [];
    private readonly List<Action<Guid>> _everything = [];
    private readonly Lock _lock = new();
    private int _streams;

    public OperationWatchers(OperationMetrics metrics) =>
        metrics.Meter.CreateObservableGauge("pollingapi.event_streams", () => Volatile.Read(ref _streams), "{stream}",
            "Server-sent event streams open on this node.");

    /// <summary>Counts an open stream for the gauge; dispose the result when the stream ends.</summary>
    public IDisposable OpenStream()
    {
        Interlocked.Increment(ref _streams);
        return new Closer(() => Interlocked.Decrement(ref _streams));
    }

    /// <summary>A task that completes at the operation's next change. Register before reading, so no change is missed.</summary>
    public Registration Register(Guid id)
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (!_watching.TryGetValue(id, out var list))
            {
                list = [];
                _watching[id] = list;
            }

            list.Add(signal);
        }

        return new Registration(signal.Task, () => Remove(id, signal));
    }

    /// <summary>Hears of every change on this node (for the filtered streams); dispose the result to stop.</summary>
    public IDisposable WatchEverything(Action<Guid> changed)
    {
        lock (_lock)
        {
            _everything.Add(changed);
        }

        return new Closer(() =>
        {
            lock (_lock)
            {
                _everything.Remove(changed);
            }
        });
    }

    /// <summary>The operation may have changed.</summary>
    public void Notify(Guid id)
    {
        List<TaskCompletionSource>? list;
        Action<Guid>[] everything;
        lock (_lock)
        {
            _watching.Remove(id, out list);
            everything = _everything.Count == 0 ? [] : [.. _everything];
        }

        list?.ForEach(signal => signal.TrySetResult());
        foreach (var changed in everything)
        {
            changed(id);
        }
    }

    /// <summary>Any operation may have changed (the listener was away): every stream reads again.</summary>
    public void NotifyAll()
    {
        List<TaskCompletionSource> all;
        Action<Guid>[] everything;
        lock (_lock)
        {
            all = [.. _watching.Values.SelectMany(list => list)];
            _watching.Clear();
            everything = [.. _everything];
        }

        all.ForEach(signal => signal.TrySetResult());
        foreach (var changed in everything)
        {
            changed(Guid.Empty);
        }
    }

    private void Remove(Guid id, TaskCompletionSource signal)
    {
        lock (_lock)
        {
            if (_watching.TryGetValue(id, out var list) && list.Remove(signal) && list.Count == 0)
            {
                _watching.Remove(id);
            }
        }
    }

    /// <summary>One registration: <see cref="Changed"/> completes at the next change; dispose it when no longer waiting.</summary>
    public sealed class Registration(Task changed, Action remove) : IDisposable
    {
        public Task Changed { get; } = changed;

        public void Dispose() => remove();
    }

    private sealed class Closer(Action close) : IDisposable
    {
        private int _closed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _closed, 1) == 0)
            {
                close();
            }
        }
    }
}
