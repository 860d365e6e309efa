using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace PollingApi.Operations.Worker;

/// <summary>
/// The handlers running on this node, each with its own cancellation and the end of the lease it holds: a cancellation
/// request fires one, a lease about to lapse unrenewed fires it too (see <see cref="Abandon"/>), the shutdown drain waits
/// for all, then cancels those still running.
/// </summary>
internal sealed partial class RunningHandlers(HandlerSlots slots, WorkerContext context, ILogger<RunningHandlers> logger)
{
    private readonly ConcurrentDictionary<Guid, RunningHandler> _running = new();
    private readonly ConcurrentDictionary<Guid, bool> _unrenewed = new();

    public int Count => _running.Count;

    public IReadOnlyCollection<Guid> Ids => [.. _running.Keys];

    /// <summary>Whether a handler of operation <paramref name="id"/> is running on this node now.</summary>
    public bool IsRunning(Guid id) => _running.ContainsKey(id);

    /// <summary>
    /// The running operations whose leases this node keeps renewing: all but those past their attempt timeout, those whose
    /// leases it gave up, and those it is handing back.
    /// </summary>
    public IReadOnlyCollection<Guid> RenewableIds =>
        _unrenewed.IsEmpty && !_running.Values.Any(h => h.Abandoned)
            ? Ids
            : [.. _running.Where(r => !_unrenewed.ContainsKey(r.Key) && !r.Value.Abandoned).Select(r => r.Key)];

    /// <summary>
    /// Stops renewing the lease of an operation whose attempt ran out of time (a handler that stops on its token ends the
    /// attempt itself well within the lease; one that ignores it loses the lease, and what it writes after that is fenced
    /// out), or that is being handed back.
    /// </summary>
    public void StopRenewing(Guid id)
    {
        if (_running.ContainsKey(id))
        {
            _unrenewed[id] = true;
        }
    }

    /// <summary>
    /// Runs <paramref name="run"/> for operation <paramref name="id"/>, held until <paramref name="leaseUntil"/>, in a slot
    /// already taken, with a token that fires on a cancellation request, when the lease is abandoned, or with
    /// <paramref name="handlerToken"/>; frees the slot when it ends.
    /// </summary>
    public void Start(Guid id, DateTime leaseUntil, Func<CancellationToken, Task> run, CancellationToken handlerToken)
    {
        var registered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new RunningHandler(CancellationTokenSource.CreateLinkedTokenSource(handlerToken), leaseUntil);
        handler.Task = RunAsync(id, run, registered.Task, handler.Cancellation);
        _running[id] = handler;
        registered.SetResult();
    }

    /// <summary>The renewal of these operations' leases until <paramref name="leaseUntil"/> was stored.</summary>
    public void Extended(IEnumerable<Guid> ids, DateTime leaseUntil)
    {
        foreach (var id in ids)
        {
            if (_running.TryGetValue(id, out var handler))
            {
                handler.Extend(leaseUntil);
            }
        }
    }

    /// <summary>When the lease this node last stored for the operation ends; null when no handler of it runs here.</summary>
    public DateTime? LeaseUntil(Guid id) => _running.TryGetValue(id, out var handler) ? handler.LeaseUntil : null;

    /// <summary>
    /// Cancels the handlers of the renewed leases that end before <paramref name="before"/> (those past their attempt
    /// timeout end by themselves): this node could not renew them, so another node may take the operations over once the
    /// leases end, and the handlers must have stopped by then. What they write afterwards is fenced out; the lease keeper
    /// hands the operations back. Returns how many were abandoned and the earliest of their leases' ends.
    /// </summary>
    public (int Count, DateTime? EarliestEnd) Abandon(DateTime before)
    {
        int count = 0;
        DateTime? earliest = null;
        foreach (var (id, handler) in _running)
        {
            var until = handler.LeaseUntil;
            if (until >= before || _unrenewed.ContainsKey(id) || !handler.TryAbandon())
            {
                continue;
            }

            count++;
            earliest = earliest is { } e && e < until ? e : until;
            _ = CancelAbandonedAsync(handler);
        }

        return (count, earliest);
    }

    /// <summary>
    /// Fires an abandoned handler's token off the caller's thread: whatever the handler registered on it (an Npgsql
    /// command's cancel request, in a partition) must not hold up the watch on the other leases.
    /// </summary>
    private async Task CancelAbandonedAsync(RunningHandler handler)
    {
        try
        {
            await handler.Cancellation.CancelAsync().ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            // It finished meanwhile.
        }
        catch (AggregateException ex)
        {
            LogCancellationCallbackFailed(ex);
        }
    }

    /// <summary>Whether the operation's handler was cancelled because its lease could not be renewed (see <see cref="Abandon"/>).</summary>
    public bool IsAbandoned(Guid id) => _running.TryGetValue(id, out var handler) && handler.Abandoned;

    /// <summary>Fires the cancellation token of the operation's handler if it runs on this node. Returns whether it does.</summary>
    public bool RequestCancel(Guid id)
    {
        if (!_running.TryGetValue(id, out var running))
        {
            return false;
        }

        try
        {
            running.Cancellation.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // It finished meanwhile.
        }

        return true;
    }

    /// <summary>
    /// Lets the running handlers finish until <paramref name="until"/>, then cancels them through
    /// <paramref name="handlerAbort"/> and waits briefly; handlers that ignore their token are not waited for longer.
    /// </summary>
    public async Task DrainAsync(CancellationTokenSource handlerAbort, DateTimeOffset until)
    {
        var running = _running.Values.Select(r => r.Task).ToArray();
        if (running.Length == 0)
        {
            return;
        }

        var budget = context.Remaining(until);
        LogDraining(running.Length, budget);
        var all = Task.WhenAll(running);
        try
        {
            await all.WaitAsync(budget, context.Time).ConfigureAwait(false);
            return;
        }
        catch (TimeoutException)
        {
            LogCancellingHandlers(_running.Count);
        }

        await handlerAbort.CancelAsync().ConfigureAwait(false);
        try
        {
            await all.WaitAsync(TimeSpan.FromSeconds(2), context.Time).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            LogHandlersIgnoredCancellation(_running.Count);
        }
    }

    private async Task RunAsync(Guid id, Func<CancellationToken, Task> run, Task registered, CancellationTokenSource cancellation)
    {
        await registered.ConfigureAwait(false);
        try
        {
            await run(cancellation.Token).ConfigureAwait(false);
        }
        finally
        {
            _running.TryRemove(id, out _);
            _unrenewed.TryRemove(id, out _);
            cancellation.Dispose();
            slots.HandlerEnded();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Stopping: waiting up to {Timeout} for {Count} running handlers")]
    private partial void LogDraining(int count, TimeSpan timeout);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cancelling {Count} handlers still running at the shutdown timeout")]
    private partial void LogCancellingHandlers(int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Count} handlers did not stop when cancelled")]
    private partial void LogHandlersIgnoredCancellation(int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A callback on the token of a handler whose lease was abandoned failed")]
    private partial void LogCancellationCallbackFailed(Exception exception);

    private sealed class RunningHandler(CancellationTokenSource cancellation, DateTime leaseUntil)
    {
        private long _leaseUntilTicks = leaseUntil.Ticks;
        private int _abandoned;

        public Task Task { get; set; } = Task.CompletedTask;

        public CancellationTokenSource Cancellation { get; } = cancellation;

        public DateTime LeaseUntil => new(Interlocked.Read(ref _leaseUntilTicks), DateTimeKind.Utc);

        public bool Abandoned => Volatile.Read(ref _abandoned) == 1;

        /// <summary>Moves the lease's end later, never earlier (renewals can complete out of order).</summary>
        public void Extend(DateTime until)
        {
            long current;
            do
            {
                current = Interlocked.Read(ref _leaseUntilTicks);
                if (until.Ticks <= current)
                {
                    return;
                }
            }
            while (Interlocked.CompareExchange(ref _leaseUntilTicks, until.Ticks, current) != current);
        }

        public bool TryAbandon() => Interlocked.Exchange(ref _abandoned, 1) == 0;
    }
}
