using Microsoft.Extensions.Logging;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Worker;

/// <summary>
/// A node's worker: claims due operations in batches, runs their handlers with bounded concurrency, renews their
/// leases while they run and writes each outcome with a fenced update. On stop it claims nothing more, lets running
/// handlers finish within <see cref="OperationsOptions.ShutdownTimeout"/>, then cancels the rest and gives their
/// operations back to <c>pending</c>. Submits on this node can hand it operations claimed at insert
/// (<see cref="TryPromiseSlot"/>).
/// </summary>
internal sealed partial class OperationWorker(
    HandlerSlots slots,
    RunningHandlers running,
    ClaimLoop claims,
    LeaseKeeper leases,
    WorkerContext context,
    ILogger<OperationWorker> logger)
{
    private CancellationToken _handlerToken;

    /// <summary>How many handlers this worker is running now.</summary>
    public int RunningCount => running.Count;

    /// <summary>Runs until <paramref name="stoppingToken"/> fires, then shuts down gracefully and returns.</summary>
    public async Task RunAsync(CancellationToken stoppingToken)
    {
        using var handlerAbort = new CancellationTokenSource();
        using var renewalStop = new CancellationTokenSource();
        Task renewal = leases.RenewUntilStoppedAsync(renewalStop.Token);
        _handlerToken = handlerAbort.Token;
        slots.StartAccepting();

        LogStarted(context.NodeId, context.Options.MaxConcurrency);
        try
        {
            await claims.RunAsync(handlerAbort.Token, stoppingToken).ConfigureAwait(false);
        }
        finally
        {
            // One shutdown budget for the promised inserts and the running handlers, so the release below fits in the
            // host's shutdown timeout.
            var drainUntil = context.Time.GetUtcNow() + context.Options.ShutdownTimeout;
            await slots.StopAcceptingAsync(drainUntil).ConfigureAwait(false);
            await running.DrainAsync(handlerAbort, drainUntil).ConfigureAwait(false);
            await renewalStop.CancelAsync().ConfigureAwait(false);
            await renewal.ConfigureAwait(false);
            await leases.ReleaseAllAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Promises a handler slot to an operation about to be inserted already claimed by this node (see
    /// <see cref="HandlerSlots"/>). False: insert it pending.
    /// </summary>
    public bool TryPromiseSlot() => slots.TryPromise();

    /// <summary>Runs an operation whose insert, claimed by this node, has committed. Stopping, it leaves it to the release.</summary>
    public void RunPromised(ClaimedOperation operation) => slots.KeepPromise(() => claims.Start(operation, _handlerToken));

    /// <summary>Gives back a promised slot whose insert failed.</summary>
    public void BreakPromise() => slots.BreakPromise();

    /// <summary>
    /// Ends the promise of a slot whose insert's commit outcome stayed unknown; the slot is given back once the row, if it
    /// was stored, is handed back (see <see cref="LeaseKeeper.ReleaseIfStored"/>).
    /// </summary>
    public void BreakPromiseOfUnknownInsert(Guid id)
    {
        slots.BreakPromiseHoldingSlot();
        leases.ReleaseIfStored(id);
    }

    /// <summary>Fires the cancellation token of the operation's handler if it runs on this node. Returns whether it does.</summary>
    public bool RequestCancel(Guid id) => running.RequestCancel(id);

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker {NodeId} started with {MaxConcurrency} handler slots")]
    private partial void LogStarted(string nodeId, int maxConcurrency);
}
