using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using PollingApi.Operations.Handlers;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Processing;

/// <summary>
/// A node's worker: claims due operations in batches, runs their handlers with bounded concurrency,
/// renews their leases while they run and writes each outcome with a fenced update. On stop it claims
/// nothing more, lets running handlers finish within <see cref="OperationsOptions.ShutdownTimeout"/>,
/// then cancels the rest and gives their operations back to <c>pending</c>.
/// </summary>
/// <remarks>
/// Work submitted on this node can skip the claim: while a handler slot is free and the last claim found the
/// queue empty, the submit promises itself a slot (<see cref="TryPromiseSlot"/>), inserts its row already running
/// under this node's lease and hands it over (<see cref="RunPromised"/>). Once a claim comes back full, or another
/// node announces pending work, or every slot is busy, submits queue as pending again until a claim finds the
/// queue empty, so work waiting in the table is never starved by new local work.
/// </remarks>
public sealed partial class OperationPump(
    NpgsqlDataSource dataSource,
    OperationStore store,
    OperationBatchWriter batchWriter,
    CommandRegistry commands,
    OperationWakeSignal wakeSignal,
    OperationWaiters waiters,
    FinishedOperationCache finishedOperations,
    OperationNotifier notifier,
    RetryBackoff backoff,
    CommitOutcomeResolver resolver,
    NodeIdentity node,
    IServiceScopeFactory scopeFactory,
    IOptions<OperationsOptions> options,
    TimeProvider timeProvider,
    ILogger<OperationPump> logger)
{
    private static readonly TimeSpan MaxDatabaseBackoff = TimeSpan.FromSeconds(5);

    private readonly ConcurrentDictionary<Guid, RunningOperation> _running = new();
    private readonly ConcurrentDictionary<Guid, byte> _releaseIfStored = new();
    private readonly OperationsOptions _options = options.Value;

    // Slot accounting, under _slots: _busy counts handlers running plus slots reserved for a claim in flight or
    // promised to a submit whose insert has not committed yet (_promised).
    private readonly Lock _slots = new();
    private int _busy;
    private int _promised;
    private bool _accepting;
    private bool _queueMayHaveWork = true;
    private long _pendingNotes;
    private TaskCompletionSource? _promisesSettled;
    private CancellationToken _handlerToken;

    /// <summary>How many handlers this pump is running now.</summary>
    public int RunningCount => _running.Count;

    /// <summary>
    /// Promises a handler slot to an operation about to be inserted already claimed by this node. False when the
    /// pump is not running, no slot is free, or work may be waiting in the table: insert it pending then.
    /// </summary>
    internal bool TryPromiseSlot()
    {
        lock (_slots)
        {
            if (!_accepting || _queueMayHaveWork || _busy >= _options.MaxConcurrency)
            {
                return false;
            }

            _busy++;
            _promised++;
            return true;
        }
    }

    /// <summary>Runs an operation whose insert, claimed by this node, has committed. Stopping, it leaves it to the release.</summary>
    internal void RunPromised(ClaimedOperation operation)
    {
        lock (_slots)
        {
            _promised--;
            if (_accepting)
            {
                // Inside the lock, so a stop cannot take its snapshot of running handlers between the check and the start.
                Start(operation, _handlerToken);
                return;
            }

            _busy--;
            SettlePromisesIfStopped();
        }
    }

    /// <summary>Gives back a promised slot whose insert failed.</summary>
    internal void BreakPromise()
    {
        lock (_slots)
        {
            _promised--;
            _busy--;
            SettlePromisesIfStopped();
        }
    }

    /// <summary>
    /// Gives back a promised slot whose insert's commit outcome stayed unknown. If it was stored, its row is running
    /// under this node with its first attempt counted but no handler; the lease renewal returns such a row to pending,
    /// its attempt uncounted, as soon as the database answers, so it runs like any other.
    /// </summary>
    internal void BreakPromiseOfUnknownInsert(Guid id)
    {
        _releaseIfStored[id] = 0;
        BreakPromise();
    }

    /// <summary>An operation was stored pending (here or on another node): claim before promising slots to submits again.</summary>
    public void NotePending()
    {
        lock (_slots)
        {
            _queueMayHaveWork = true;
            _pendingNotes++;
        }

        wakeSignal.Wake();
    }

    private void SettlePromisesIfStopped()
    {
        if (!_accepting && _promised == 0)
        {
            _promisesSettled?.TrySetResult();
        }
    }

    /// <summary>Runs until <paramref name="stoppingToken"/> fires, then shuts down gracefully and returns.</summary>
    public async Task RunAsync(CancellationToken stoppingToken)
    {
        using var handlerAbort = new CancellationTokenSource();
        using var renewalStop = new CancellationTokenSource();
        Task renewal = RenewLeasesUntilStoppedAsync(renewalStop.Token);
        lock (_slots)
        {
            _handlerToken = handlerAbort.Token;
            _accepting = true;
            _queueMayHaveWork = true;
        }

        LogStarted(node.Id, _options.MaxConcurrency);
        try
        {
            await ClaimUntilStoppedAsync(handlerAbort.Token, stoppingToken).ConfigureAwait(false);
        }
        finally
        {
            // One shutdown budget for the promised inserts and the running handlers, so the release below fits in the
            // host's shutdown timeout.
            var drainUntil = timeProvider.GetUtcNow() + _options.ShutdownTimeout;
            await StopAcceptingAsync(drainUntil).ConfigureAwait(false);
            await DrainAsync(handlerAbort, drainUntil).ConfigureAwait(false);
            await renewalStop.CancelAsync().ConfigureAwait(false);
            await renewal.ConfigureAwait(false);
            await ReleaseLeasesAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Promises no more slots, and waits (within the shutdown timeout) for the inserts of those promised.</summary>
    private async Task StopAcceptingAsync(DateTimeOffset until)
    {
        Task settled;
        lock (_slots)
        {
            _accepting = false;
            _promisesSettled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            SettlePromisesIfStopped();
            settled = _promisesSettled.Task;
        }

        try
        {
            await settled.WaitAsync(Remaining(until), timeProvider).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // An insert still in flight: if it commits, its row is running under this node and is released below.
        }
    }

    private async Task ClaimUntilStoppedAsync(CancellationToken handlerToken, CancellationToken stoppingToken)
    {
        var databaseBackoff = TimeSpan.Zero;
        while (!stoppingToken.IsCancellationRequested)
        {
            int free;
            long pendingNotesBefore;
            lock (_slots)
            {
                pendingNotesBefore = _pendingNotes;
                free = Math.Max(_options.MaxConcurrency - _busy, 0);
                _busy += free;
                if (free == 0)
                {
                    // Every slot is busy, so nothing can tell whether work waits: claim when one frees.
                    _queueMayHaveWork = true;
                }
            }

            int claimedCount = 0;
            if (free > 0)
            {
                var now = timeProvider.GetUtcNow().UtcDateTime;
                var leaseUntil = now + _options.LeaseDuration;
                try
                {
                    // A claim whose commit outcome is unknown is settled by finding the rows it took (by this node and its
                    // lease expiry) and running them, so they do not wait out their lease with an attempt counted.
                    bool settled = false;
                    var claimed = await resolver.RunAsync("a claim", ct => store.ClaimAsync(node.Id, free, now, leaseUntil, ct), ct =>
                    {
                        settled = true;
                        return store.FindClaimedAsync(node.Id, leaseUntil, ct);
                    }, stoppingToken).ConfigureAwait(false);
                    claimedCount = claimed.Count;
                    foreach (var operation in claimed)
                    {
                        Start(operation, handlerToken);
                    }

                    lock (_slots)
                    {
                        // Work stored pending after this claim's snapshot may be waiting: only a later claim can tell. A settled
                        // claim says nothing of what else is due.
                        _queueMayHaveWork = settled || claimedCount == free || _pendingNotes != pendingNotesBefore;
                    }

                    databaseBackoff = TimeSpan.Zero;
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                {
                    return;
                }
                catch (NpgsqlException ex)
                {
                    databaseBackoff = NextDatabaseBackoff(databaseBackoff);
                    LogClaimFailed(ex, databaseBackoff);
                    await DelayAsync(databaseBackoff, stoppingToken).ConfigureAwait(false);
                    continue;
                }
                finally
                {
                    lock (_slots)
                    {
                        _busy -= free - claimedCount;
                    }
                }
            }

            // A full batch means more may be due right away; otherwise wait for a wake-up or the poll interval.
            if (claimedCount == 0 || claimedCount < free)
            {
                await WaitForWorkAsync(stoppingToken).ConfigureAwait(false);
            }
        }
    }

    private async Task WaitForWorkAsync(CancellationToken stoppingToken)
    {
        try
        {
            await wakeSignal.WaitAsync(_options.PollInterval, timeProvider, stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: the loop condition ends the claiming.
        }
    }

    /// <summary>
    /// Fires the cancellation token of the operation's handler if it runs on this node. Returns whether it does.
    /// </summary>
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

    private void Start(ClaimedOperation operation, CancellationToken handlerToken)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cancellation = CancellationTokenSource.CreateLinkedTokenSource(handlerToken);
        var task = RunOneAsync(operation, started.Task, cancellation, handlerToken);
        _running[operation.Id] = new RunningOperation(task, cancellation);
        started.SetResult();
    }

    private async Task RunOneAsync(ClaimedOperation operation, Task registered, CancellationTokenSource cancellation,
        CancellationToken shutdownToken)
    {
        await registered.ConfigureAwait(false);
        try
        {
            using var scope = logger.BeginScope(new Dictionary<string, object>
            {
                ["OperationId"] = operation.Id,
                ["OperationKind"] = operation.Kind,
                ["Attempt"] = operation.Attempts,
            });
            await ExecuteAsync(operation, cancellation.Token, shutdownToken).ConfigureAwait(false);
        }
        finally
        {
            _running.TryRemove(operation.Id, out _);
            cancellation.Dispose();
            bool claimNow;
            lock (_slots)
            {
                _busy--;
                claimNow = _queueMayHaveWork;
            }

            // A freed slot is worth a claim only when work may be waiting; an empty queue costs no statement.
            if (claimNow)
            {
                wakeSignal.Wake();
            }
        }
    }

    private async Task ExecuteAsync(ClaimedOperation operation, CancellationToken handlerToken, CancellationToken shutdownToken)
    {
        var transactionScope = new TransactionHolder();
        try
        {
            await ExecuteCoreAsync(operation, transactionScope, handlerToken, shutdownToken).ConfigureAwait(false);
        }
        finally
        {
            await transactionScope.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task ExecuteCoreAsync(ClaimedOperation operation, TransactionHolder transactionScope, CancellationToken handlerToken,
        CancellationToken shutdownToken)
    {
        var command = commands.Find(operation.Kind);
        if (command is null)
        {
            LogUnknownKind(operation.Kind);
            await WriteOutcomeAsync(operation, ct => store.FailAsync(operation.Id, node.Id, operation.Attempts,
                ErrorJson(ProblemTypes.UnknownKind, "Unknown command kind.",
                    $"No handler for '{operation.Kind}' is registered."), Now(), ct),
                LeftAs(operation, (OperationStatus.Failed, ProblemTypes.UnknownKind))).ConfigureAwait(false);
            return;
        }

        string resultJson;
        try
        {
            NpgsqlTransaction? transaction = null;
            if (command.Transactional)
            {
                transactionScope.Connection = await dataSource.OpenConnectionAsync(handlerToken).ConfigureAwait(false);
                transaction = await transactionScope.Connection.BeginTransactionAsync(handlerToken).ConfigureAwait(false);
                transactionScope.Transaction = transaction;
            }

            var context = new OperationContext(operation.Id, operation.Kind, operation.Attempts, operation.MaxAttempts,
                (percent, message, ct) => ReportProgressAsync(operation, percent, message, ct), transaction);
            await using var scope = scopeFactory.CreateAsyncScope();
            resultJson = await command.Execute(scope.ServiceProvider, operation.Payload, context, handlerToken).ConfigureAwait(false);
            if (transaction is not null)
            {
                await CommitWithOutcomeAsync(operation, transaction, resultJson).ConfigureAwait(false);
                return;
            }
        }
        catch (OperationCanceledException) when (shutdownToken.IsCancellationRequested)
        {
            // Shutdown cancelled the handler: the lease is released, not counted as a failure.
            LogInterrupted();
            return;
        }
        catch (OperationCanceledException) when (handlerToken.IsCancellationRequested)
        {
            await transactionScope.RollbackAsync().ConfigureAwait(false);
            LogCancelled();
            await WriteOutcomeAsync(operation, ct => store.MarkCancelledAsync(operation.Id, node.Id, operation.Attempts,
                CancelledErrorJson, Now(), ct), LeftAs(operation, (OperationStatus.Cancelled, ProblemTypes.OperationCancelled))).ConfigureAwait(false);
            return;
        }
        catch (PermanentOperationFailureException ex)
        {
            await transactionScope.RollbackAsync().ConfigureAwait(false);
            LogPermanentFailure(ex, ex.Type);
            await WriteOutcomeAsync(operation, ct => store.FailAsync(operation.Id, node.Id, operation.Attempts,
                ErrorJson(ex.Type, ex.Title, ex.Detail), Now(), ct), LeftAs(operation, (OperationStatus.Failed, ex.Type))).ConfigureAwait(false);
            return;
        }
#pragma warning disable CA1031 // A handler's failure of any type is an outcome to record, not a crash of the worker.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            await transactionScope.RollbackAsync().ConfigureAwait(false);
            await HandleTransientFailureAsync(operation, ex).ConfigureAwait(false);
            return;
        }

        // Successes are the common outcome: they share group commits with the other handlers' successes, and the
        // row the completion returns goes to the requests waiting here.
        OperationRow? completed = null;
        var completion = new OperationCompletion(operation.Id, node.Id, operation.Attempts, resultJson, Now());
        bool stored = await WriteOutcomeAsync(operation, async _ =>
        {
            long generation = finishedOperations.Generation;
            completed = await batchWriter.CompleteAsync(completion).ConfigureAwait(false);
            if (completed is not null)
            {
                // The first poll after it finished is answered from memory too.
                finishedOperations.Offer(completed, generation);
            }

            return completed is not null;
        }, async ct => (completed = await store.FindSucceededAsync([completion], ct).ConfigureAwait(false) is [var row] ? row : null) is not null,
            current: () => completed).ConfigureAwait(false);
        if (stored)
        {
            LogSucceeded();
        }
    }

    /// <summary>
    /// Marks a transactional handler's operation succeeded in the handler's own transaction and commits both, or
    /// rolls the handler's writes back when the lease was lost meanwhile. A commit that fails leaves nothing applied;
    /// the lease then expires and another attempt runs.
    /// </summary>
    private async Task CommitWithOutcomeAsync(ClaimedOperation operation, NpgsqlTransaction transaction, string resultJson)
    {
        bool fenced = await OperationStore.CompleteInTransactionAsync(operation.Id, node.Id, operation.Attempts, resultJson, Now(), transaction, CancellationToken.None)
            .ConfigureAwait(false);
        if (!fenced)
        {
            await transaction.RollbackAsync(CancellationToken.None).ConfigureAwait(false);
            LogFencedOut(operation.Attempts);
            return;
        }

        int backendProcessId = transaction.Connection!.ProcessID;
        try
        {
            await transaction.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (WriteFailure.LeavesOutcomeUnknown(ex))
        {
            // The COMMIT was sent and its acknowledgement lost. The row tells: succeeded on this attempt with this result
            // means the handler's writes are committed with it; anything else means they are not, and the attempt is
            // retried like any failed one. The read waits for the row lock this transaction held, so it sees its end.
            var completion = new OperationCompletion(operation.Id, node.Id, operation.Attempts, resultJson, Now());
            bool committed;
            try
            {
                committed = await resolver.SettleAsync("a transactional handler's commit",
                    async ct => (await store.FindSucceededAsync([completion], ct).ConfigureAwait(false)).Count == 1,
                    new CommitOutcomeUnknownException("The connection failed after COMMIT was sent.", ex, backendProcessId),
                    CancellationToken.None).ConfigureAwait(false);
            }
            catch (CommitOutcomeUnknownException)
            {
                // Still unknown: if it was committed the operation is done; if not, its lease expires and another attempt
                // runs. Waiters read the row again rather than wait out their time.
                waiters.Notify(operation.Id);
                notifier.Done(operation.Id);
                return;
            }

            if (!committed)
            {
                throw;
            }

            resolver.ReportSettled("a transactional handler's commit", 1, 0);
        }

        waiters.Notify(operation.Id);
        notifier.Done(operation.Id);
        LogSucceeded();
    }

    private async Task HandleTransientFailureAsync(ClaimedOperation operation, Exception exception)
    {
        if (operation.Attempts >= operation.MaxAttempts)
        {
            LogAttemptsExhausted(exception, operation.Attempts);
            await WriteOutcomeAsync(operation, ct => store.FailAsync(operation.Id, node.Id, operation.Attempts,
                ErrorJson(ProblemTypes.AttemptsExhausted, "The operation failed on every attempt.",
                    $"All {operation.MaxAttempts} attempts failed with a transient error."), Now(), ct),
                LeftAs(operation, (OperationStatus.Failed, ProblemTypes.AttemptsExhausted))).ConfigureAwait(false);
            return;
        }

        var delay = backoff.Delay(operation.Attempts);
        LogRetryScheduled(exception, operation.Attempts, delay);
        await WriteOutcomeAsync(operation, ct =>
        {
            var now = Now();
            return store.ScheduleRetryAsync(operation.Id, node.Id, operation.Attempts, now + delay, now, CancelledErrorJson, ct);
        }, LeftAs(operation, (OperationStatus.Pending, null), (OperationStatus.Cancelled, ProblemTypes.OperationCancelled)),
            terminal: false).ConfigureAwait(false);
    }

    /// <summary>
    /// Writes an attempt's outcome, retrying while the database is unreachable for as long as the lease lasts.
    /// Returns false when the write was fenced out (the lease was lost) or could not be made in time; in both
    /// cases lease rescue hands the operation to another attempt.
    /// </summary>
    /// <remarks>
    /// A write whose commit outcome was unknown is fenced out when it runs again if the first one was committed after
    /// all: the operation no longer holds this node's lease. So after an unknown outcome, a fenced-out write asks
    /// <paramref name="wasWritten"/> whether the operation holds exactly the outcome this attempt wrote, and if so
    /// reports it as written (to waiters and other nodes) instead of as a lost lease.
    /// </remarks>
    private async Task<bool> WriteOutcomeAsync(ClaimedOperation operation, Func<CancellationToken, Task<bool>> write,
        Func<CancellationToken, Task<bool>> wasWritten, bool terminal = true, Func<OperationRow?>? current = null)
    {
        var deadline = timeProvider.GetUtcNow() + _options.LeaseDuration;
        var delay = TimeSpan.Zero;
        bool outcomeUnknown = false;
        while (true)
        {
            try
            {
                bool written = await write(CancellationToken.None).ConfigureAwait(false);
                if (!written && outcomeUnknown && await wasWritten(CancellationToken.None).ConfigureAwait(false))
                {
                    resolver.ReportSettled("an attempt's outcome", 1, 0);
                    written = true;
                }

                if (!written)
                {
                    LogFencedOut(operation.Attempts);
                }
                else if (terminal)
                {
                    // Local waiters learn of the outcome at once, other nodes' waiters through a notification.
                    waiters.Notify(operation.Id, current?.Invoke());
                    notifier.Done(operation.Id);
                }

                return written;
            }
            catch (NpgsqlException ex) when (timeProvider.GetUtcNow() < deadline)
            {
                outcomeUnknown |= ex is CommitOutcomeUnknownException;
                delay = NextDatabaseBackoff(delay);
                LogOutcomeWriteFailed(ex, delay);
                await DelayAsync(delay, CancellationToken.None).ConfigureAwait(false);
            }
            catch (NpgsqlException ex) when (terminal && (outcomeUnknown || ex is CommitOutcomeUnknownException))
            {
                // Given up with the outcome perhaps stored: waiters read the row again rather than wait out their time.
                waiters.Notify(operation.Id);
                notifier.Done(operation.Id);
                throw;
            }
        }
    }

    /// <summary>
    /// Whether the operation holds one of the given outcomes of this very attempt (not under any lease): what an outcome
    /// write whose acknowledgement was lost leaves behind when it was committed.
    /// </summary>
    private Func<CancellationToken, Task<bool>> LeftAs(ClaimedOperation operation, params (string Status, string? ErrorType)[] outcomes) =>
        async ct => await store.ReadOutcomeAsync(operation.Id, ct).ConfigureAwait(false) is { } left
                    && left.Attempts == operation.Attempts && left.LockedBy is null
                    && outcomes.Any(o => o.Status == left.Status && (o.ErrorType is null || o.ErrorType == left.ErrorType));

    private async Task ReportProgressAsync(ClaimedOperation operation, int percent, string? message, CancellationToken cancellationToken)
    {
        string progressJson = JsonSerializer.Serialize(new OperationProgress(percent, message), OperationJson.Options);
        bool written = await store.ReportProgressAsync(operation.Id, node.Id, operation.Attempts, progressJson, Now(), cancellationToken)
            .ConfigureAwait(false);
        if (!written)
        {
            LogFencedOut(operation.Attempts);
        }
    }

    private async Task RenewLeasesUntilStoppedAsync(CancellationToken stopToken)
    {
        while (!stopToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_options.LeaseRenewInterval, timeProvider, stopToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            await ReleaseUnknownInsertsAsync(stopToken).ConfigureAwait(false);
            var ids = _running.Keys.ToArray();
            if (ids.Length == 0)
            {
                continue;
            }

            try
            {
                var now = timeProvider.GetUtcNow().UtcDateTime;
                var renewed = await store.RenewLeasesAsync(node.Id, ids, now + _options.LeaseDuration, stopToken).ConfigureAwait(false);
                if (renewed.Count < ids.Length)
                {
                    LogLeasesLost(ids.Length - renewed.Count);
                }

                // A cancellation whose notification was missed (the listener was reconnecting) is caught here.
                foreach (var lease in renewed.Where(l => l.CancelRequested))
                {
                    RequestCancel(lease.Id);
                }
            }
            catch (OperationCanceledException) when (stopToken.IsCancellationRequested)
            {
                return;
            }
            catch (NpgsqlException ex)
            {
                LogRenewalFailed(ex);
            }
        }
    }

    /// <summary>See <see cref="BreakPromiseOfUnknownInsert"/>.</summary>
    private async Task ReleaseUnknownInsertsAsync(CancellationToken stopToken)
    {
        var ids = _releaseIfStored.Keys.ToArray();
        if (ids.Length == 0)
        {
            return;
        }

        try
        {
            int released = await store.ReleaseUnstartedAsync(node.Id, ids, timeProvider.GetUtcNow().UtcDateTime, stopToken).ConfigureAwait(false);
            foreach (var id in ids)
            {
                _releaseIfStored.TryRemove(id, out _);
            }

            if (released > 0)
            {
                LogUnknownInsertsReleased(released);
                NotePending();
                notifier.Pending();
            }
        }
        catch (NpgsqlException ex)
        {
            // Tried again at the next renewal; at shutdown the release of everything this node holds covers them.
            LogRenewalFailed(ex);
        }
    }

    private async Task DrainAsync(CancellationTokenSource handlerAbort, DateTimeOffset until)
    {
        var running = _running.Values.Select(r => r.Task).ToArray();
        if (running.Length == 0)
        {
            return;
        }

        var budget = Remaining(until);
        LogDraining(running.Length, budget);
        var all = Task.WhenAll(running);
        try
        {
            await all.WaitAsync(budget, timeProvider).ConfigureAwait(false);
            return;
        }
        catch (TimeoutException)
        {
            LogCancellingHandlers(_running.Count);
        }

        await handlerAbort.CancelAsync().ConfigureAwait(false);
        try
        {
            // Handlers that ignore their token are not waited for any longer: their leases are released below.
            await all.WaitAsync(TimeSpan.FromSeconds(2), timeProvider).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            LogHandlersIgnoredCancellation(_running.Count);
        }
    }

    private async Task ReleaseLeasesAsync()
    {
        try
        {
            int released = await store.ReleaseAsync(node.Id, Now(), CancellationToken.None).ConfigureAwait(false);
            if (released > 0)
            {
                LogReleased(released);
            }
        }
        catch (NpgsqlException ex)
        {
            // The leases will expire and lease rescue will return the operations to pending.
            LogReleaseFailed(ex);
        }
    }

    private DateTime Now() => timeProvider.GetUtcNow().UtcDateTime;

    private TimeSpan Remaining(DateTimeOffset until)
    {
        var remaining = until - timeProvider.GetUtcNow();
        return remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero;
    }

    private Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken) =>
        Task.Delay(delay, timeProvider, cancellationToken).ContinueWith(static _ => { }, CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    private static TimeSpan NextDatabaseBackoff(TimeSpan previous) =>
        previous == TimeSpan.Zero ? TimeSpan.FromMilliseconds(100) : TimeSpan.FromTicks(Math.Min(previous.Ticks * 2, MaxDatabaseBackoff.Ticks));

    internal static readonly string CancelledErrorJson = ErrorJson(ProblemTypes.OperationCancelled, "The operation was cancelled.",
        "Cancellation was requested through the API.");

    internal static string ErrorJson(string type, string title, string? detail) =>
        JsonSerializer.Serialize(new OperationError(type, title, detail), OperationJson.Options);

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker {NodeId} started with {MaxConcurrency} handler slots")]
    private partial void LogStarted(string nodeId, int maxConcurrency);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Claiming operations failed; retrying in {Delay}")]
    private partial void LogClaimFailed(Exception exception, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Error, Message = "No handler is registered for kind {Kind}")]
    private partial void LogUnknownKind(string kind);

    [LoggerMessage(Level = LogLevel.Information, Message = "Handler interrupted by shutdown; the operation will be released")]
    private partial void LogInterrupted();

    [LoggerMessage(Level = LogLevel.Information, Message = "Handler stopped on a cancellation request")]
    private partial void LogCancelled();

    [LoggerMessage(Level = LogLevel.Warning, Message = "Operation failed permanently with {ProblemType}")]
    private partial void LogPermanentFailure(Exception exception, string problemType);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Operation failed on its last attempt {Attempt}")]
    private partial void LogAttemptsExhausted(Exception exception, int attempt);

    [LoggerMessage(Level = LogLevel.Information, Message = "Attempt {Attempt} failed; retrying in {Delay}")]
    private partial void LogRetryScheduled(Exception exception, int attempt, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Operation succeeded")]
    private partial void LogSucceeded();

    [LoggerMessage(Level = LogLevel.Warning, Message = "Attempt {Attempt} lost its lease; its outcome was not stored")]
    private partial void LogFencedOut(int attempt);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "{Count} operations whose insert's commit outcome was unknown were stored after all; returned to pending")]
    private partial void LogUnknownInsertsReleased(int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Storing an outcome failed; retrying in {Delay}")]
    private partial void LogOutcomeWriteFailed(Exception exception, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Count} running operations are no longer leased to this node")]
    private partial void LogLeasesLost(int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Renewing leases failed")]
    private partial void LogRenewalFailed(Exception exception);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stopping: waiting up to {Timeout} for {Count} running handlers")]
    private partial void LogDraining(int count, TimeSpan timeout);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cancelling {Count} handlers still running at the shutdown timeout")]
    private partial void LogCancellingHandlers(int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Count} handlers did not stop when cancelled")]
    private partial void LogHandlersIgnoredCancellation(int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Released {Count} unfinished operations back to pending")]
    private partial void LogReleased(int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "Releasing leases at shutdown failed; lease rescue will recover them")]
    private partial void LogReleaseFailed(Exception exception);
}

internal sealed record RunningOperation(Task Task, CancellationTokenSource Cancellation);

/// <summary>The connection and transaction of a transactional handler's attempt, closed whatever happens.</summary>
internal sealed class TransactionHolder : IAsyncDisposable
{
    public NpgsqlConnection? Connection { get; set; }

    public NpgsqlTransaction? Transaction { get; set; }

    public async Task RollbackAsync()
    {
        if (Transaction is { Connection: not null } transaction)
        {
            try
            {
                await transaction.RollbackAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (NpgsqlException)
            {
                // The connection is broken: the server has rolled the transaction back already.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Transaction is not null)
        {
            await Transaction.DisposeAsync().ConfigureAwait(false);
        }

        if (Connection is not null)
        {
            await Connection.DisposeAsync().ConfigureAwait(false);
        }
    }
}

/// <summary>A node's identity in <c>locked_by</c>.</summary>
public sealed record NodeIdentity(string Id);

/// <summary>Progress as pollers see it.</summary>
[System.ComponentModel.Description("Progress a running handler reported.")]
public sealed record OperationProgress(
    [property: System.ComponentModel.Description("0 to 100.")] int Percent,
    [property: System.ComponentModel.Description("A short note for humans; null if none.")] string? Message);

/// <summary>An operation's error: an RFC 9457 problem object with a stable <c>type</c>.</summary>
[System.ComponentModel.Description("Why the operation failed: an RFC 9457 problem object.")]
public sealed record OperationError(
    [property: System.ComponentModel.Description("A stable URI naming the kind of failure, e.g. urn:pollingapi:problem:attempts-exhausted.")] string Type,
    [property: System.ComponentModel.Description("A short summary of the kind of failure.")] string Title,
    [property: System.ComponentModel.Description("What went wrong with this operation; null if nothing more is known.")] string? Detail);
