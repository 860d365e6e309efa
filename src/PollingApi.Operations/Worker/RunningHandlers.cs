using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace PollingApi.Operations.Worker;

/// <summary>
/// The handlers running on this node, each with its own cancellation: a cancellation request fires one, the shutdown
/// drain waits for all, then cancels those still running.
/// </summary>
internal sealed partial class RunningHandlers(HandlerSlots slots, WorkerContext context, ILogger<RunningHandlers> logger)
{
    private readonly ConcurrentDictionary<Guid, RunningHandler> _running = new();
    private readonly ConcurrentDictionary<Guid, bool> _unrenewed = new();

    public int Count => _running.Count;

    public IReadOnlyCollection<Guid> Ids => [.. _running.Keys];

    /// <summary>The running operations whose leases this node keeps renewing: all but those past their attempt timeout.</summary>
    public IReadOnlyCollection<Guid> RenewableIds => _unrenewed.IsEmpty ? Ids : [.. _running.Keys.Where(id => !_unrenewed.ContainsKey(id))];

    /// <summary>
    /// Stops renewing the lease of an operation whose attempt ran out of time: a handler that stops on its token ends the
    /// attempt itself well within the lease; one that ignores it loses the lease, and what it writes after that is fenced out.
    /// </summary>
    public void StopRenewing(Guid id)
    {
        if (_running.ContainsKey(id))
        {
            _unrenewed[id] = true;
        }
    }

    /// <summary>
    /// Runs <paramref name="run"/> for operation <paramref name="id"/> in a slot already taken, with a token that fires on
    /// a cancellation request or with <paramref name="handlerToken"/>; frees the slot when it ends.
    /// </summary>
    public void Start(Guid id, Func<CancellationToken, Task> run, CancellationToken handlerToken)
    {
        var registered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cancellation = CancellationTokenSource.CreateLinkedTokenSource(handlerToken);
        var task = RunAsync(id, run, registered.Task, cancellation);
        _running[id] = new RunningHandler(task, cancellation);
        registered.SetResult();
    }

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

    private sealed record RunningHandler(Task Task, CancellationTokenSource Cancellation);
}
