using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;
using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;
using PollingApi.Operations.Telemetry;

namespace PollingApi.Operations.Worker;

/// <summary>
/// Keeps the leases of this node's running handlers: renews them every <see cref="OperationsOptions.LeaseRenewInterval"/>
/// (learning of cancellation requests on the way), hands back operations stored claimed at insert or claimed by a claim
/// whose commit outcome was unknown, and at shutdown releases everything this node still holds. When renewals stop reaching the
/// database (the network stalls, the database is gone), it cancels the handlers whose leases are about to end before
/// another node can take their operations over, and stops claims until the database answers again.
/// </summary>
/// <remarks>
/// <para>The renewals run beside the watch on the leases, not in its way: a renewal stuck on a connection that no longer
/// answers (until its command timeout) must not keep the handlers running past their leases. A lease counts as ending
/// at what this node last stored for it, by the engine's clock (the database's): the same time lease rescue on any
/// other node compares it with. Only failing renewals lead to an abandon: a lease that merely looks old, after this
/// process was paused, say, is renewed first.</para>
/// <para>An attempt given up without its outcome stored (its handler stopped that way, or its outcome could not be
/// written while the lease lasted) keeps its handler slot until the keeper has handed its operation back, as soon as
/// the database answers, and claims wait for that too: the node never holds more running operations than it has slots,
/// and what it gave up runs again at once instead of after its lease.</para>
/// </remarks>
internal sealed partial class LeaseKeeper(
    AttemptStore store,
    RunningHandlers running,
    HandlerSlots slots,
    IOperationSignals signals,
    WorkerContext context,
    OperationMetrics metrics,
    ILogger<LeaseKeeper> logger)
{
    private readonly ConcurrentDictionary<Guid, byte> _releaseIfStored = new();
    private readonly ConcurrentDictionary<DateTime, int> _claimsToRelease = new();

    /// <summary>Handlers the last renewal did not renew while they were still running (renewals run one at a time).</summary>
    private HashSet<Guid> _missedLastRenewal = [];
    private readonly ConcurrentDictionary<Guid, GivenUp> _givenUp = new();
    private readonly Lock _gate = new();
    private TaskCompletionSource? _claimsSuspended;
    private long _roundStartedAt;
    private bool _lastRoundFailed;

    /// <summary>
    /// How long before its end a lease whose renewals fail is given up: a renewal interval, but at most a quarter of the
    /// lease, so that the renewal after the last stored one still has its chance first.
    /// </summary>
    private TimeSpan AbandonMargin => TimeSpan.FromTicks(Math.Min(context.Options.LeaseRenewInterval.Ticks, context.Options.LeaseDuration.Ticks / 4));

    /// <summary>
    /// An insert claimed by this node whose commit outcome stayed unknown: if it was stored, its row is running under this
    /// node with its first attempt counted but no handler. It is returned to pending, its attempt uncounted, at the next
    /// renewal the database answers, so it runs like any other; its handler slot stays taken until then.
    /// </summary>
    public void ReleaseIfStored(Guid id) => _releaseIfStored[id] = 0;

    /// <summary>
    /// A claim by this node whose commit outcome stayed unknown: if it was committed, the rows it took are running under this
    /// node (their lease expiring at <paramref name="leaseUntil"/>) with an attempt counted but no handler. They are returned
    /// to pending, the attempt uncounted, at the next renewal the database answers; the <paramref name="slots"/> handler
    /// slots reserved for the claim stay taken until then.
    /// </summary>
    public void ReleaseClaimIfStored(DateTime leaseUntil, int slots) => _claimsToRelease[leaseUntil] = slots;

    /// <summary>How many writes with an unknown commit outcome wait to have what they may have stored handed back.</summary>
    internal int UnsettledWrites => _releaseIfStored.Count + _claimsToRelease.Count;

    /// <summary>
    /// Completes at once while claims may go on; after leases were abandoned, when the database answers this node again.
    /// </summary>
    public Task WhenClaimsAllowedAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return _claimsSuspended is { } suspended ? suspended.Task.WaitAsync(cancellationToken) : Task.CompletedTask;
        }
    }

    /// <summary>
    /// Hands the operation of an attempt that ended without its outcome stored back to <c>pending</c> (see the remarks),
    /// and completes once that is done or the operation is no longer this node's; at once when
    /// <paramref name="stopToken"/> fires (the release at shutdown covers it then). Claims wait until it is handed back.
    /// </summary>
    public async Task HandBackAsync(ClaimedOperation operation, CancellationToken stopToken)
    {
        running.StopRenewing(operation.Id);
        var givenUp = new GivenUp(operation.Attempts);
        _givenUp[operation.Id] = givenUp;
        SuspendClaims();
        try
        {
            await givenUp.HandedBack.Task.WaitAsync(stopToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stopToken.IsCancellationRequested)
        {
            // Stopping: the release of everything this node holds takes it.
        }
    }

    public async Task RenewUntilStoppedAsync(CancellationToken stopToken)
    {
        // Watched twice per margin, so a lapsing lease is seen with at least half the margin left.
        var watchInterval = AbandonMargin / 2;
        long lastRoundAt = context.Time.GetTimestamp();
        Task renewal = Task.CompletedTask;
        while (!stopToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(watchInterval, context.Time, stopToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            AbandonLapsingLeases();
            if (renewal.IsCompleted && context.Time.GetElapsedTime(lastRoundAt) >= context.Options.LeaseRenewInterval)
            {
                lastRoundAt = context.Time.GetTimestamp();
                renewal = RenewRoundAsync(stopToken);
            }
        }

        await renewal.ConfigureAwait(false);
    }

    /// <summary>Gives every operation this node still holds back to pending, its interrupted attempt uncounted.</summary>
    public async Task ReleaseAllAsync()
    {
        try
        {
            int released = await store.ReleaseAsync(context.NodeId, context.Now(), CancellationToken.None).ConfigureAwait(false);
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

    /// <summary>
    /// One renewal: the unknown inserts, the leases, then what was given up; with claims suspended and nothing to renew or
    /// hand back, a round trip that shows whether the database answers. It is not cancelled when it takes long (the connection timeouts end a stuck
    /// one): cancelling an Npgsql command in a partition blocks the cancelling thread on a cancel request of its own.
    /// </summary>
    private async Task RenewRoundAsync(CancellationToken stopToken)
    {
        lock (_gate)
        {
            // How long a renewal has been under way is physical time (a stuck connection), whatever the engine's clock.
            _roundStartedAt = Stopwatch.GetTimestamp();
        }

        bool failed = true;
        try
        {
            try
            {
                await ReleaseUnknownWritesAsync(stopToken).ConfigureAwait(false);
            }
            catch (NpgsqlException ex)
            {
                // Tried again at the next renewal; the renewal below must not wait for it.
                LogRenewalFailed(ex);
            }

            bool renewed = await RenewAsync(stopToken).ConfigureAwait(false);
            bool handedBack = await HandBackGivenUpAsync(stopToken).ConfigureAwait(false);
            if (!renewed && !handedBack && ClaimsSuspended)
            {
                await store.PingAsync(stopToken).ConfigureAwait(false);
            }

            failed = false;
        }
        catch (OperationCanceledException) when (stopToken.IsCancellationRequested)
        {
            failed = false;
        }
        catch (NpgsqlException ex)
        {
            LogRenewalFailed(ex);
        }
        finally
        {
            lock (_gate)
            {
                _roundStartedAt = 0;
                _lastRoundFailed = failed;
            }
        }

        if (!failed && _givenUp.IsEmpty)
        {
            ResumeClaims();
        }
    }

    /// <summary>Hands back what was given up; false when there was nothing to hand back.</summary>
    private async Task<bool> HandBackGivenUpAsync(CancellationToken cancellationToken)
    {
        var givenUp = _givenUp.ToArray();
        if (givenUp.Length == 0)
        {
            return false;
        }

        var now = context.Now();
        var handedBack = await store.HandBackAsync(context.NodeId, [.. givenUp.Select(g => (g.Key, g.Value.Attempt))], now,
            OperationErrors.LeaseExpired, OperationErrors.Cancelled, OperationErrors.LeaseLost, cancellationToken).ConfigureAwait(false);
        foreach (var operation in handedBack)
        {
            bool ended = OperationStatus.IsTerminal(operation.Status);
            metrics.LeaseRescued(ended ? OperationStatus.Failed : OperationStatus.Pending);
            metrics.AttemptEnded(operation.Kind, AttemptOutcome.LeaseLost, startedTimestamp: 0);
            if (ended)
            {
                metrics.Completed(operation.Kind, operation.Status, OperationExpiry.CreatedAt(operation.Id), now);
                signals.Finished(operation.Id);
            }
            else
            {
                signals.Changed(operation.Id);
            }
        }

        // Handed back, or no longer this node's (rescued meanwhile, or its outcome was stored after all).
        foreach (var (id, entry) in givenUp)
        {
            _givenUp.TryRemove(KeyValuePair.Create(id, entry));
            entry.HandedBack.TrySetResult();
        }

        if (handedBack.Count > 0)
        {
            LogHandedBack(handedBack.Count);
            signals.Pending();
        }

        return true;
    }

    /// <summary>
    /// Cancels the handlers whose leases end within <see cref="AbandonMargin"/> while renewals are failing (the last one
    /// failed, or the one under way has taken longer than the margin), and suspends claims.
    /// </summary>
    private void AbandonLapsingLeases()
    {
        bool failing;
        lock (_gate)
        {
            failing = _lastRoundFailed || (_roundStartedAt != 0 && Stopwatch.GetElapsedTime(_roundStartedAt) > AbandonMargin);
        }

        if (!failing)
        {
            return;
        }

        var now = context.Now();
        var (count, earliestEnd) = running.Abandon(now + AbandonMargin);
        if (count == 0)
        {
            return;
        }

        SuspendClaims();
        LogLeasesLapsing(count, (earliestEnd!.Value - now).TotalMilliseconds);
    }

    private void SuspendClaims()
    {
        lock (_gate)
        {
            _claimsSuspended ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    private bool ClaimsSuspended
    {
        get
        {
            lock (_gate)
            {
                return _claimsSuspended is not null;
            }
        }
    }

    private void ResumeClaims()
    {
        TaskCompletionSource? suspended;
        lock (_gate)
        {
            suspended = _claimsSuspended;
            _claimsSuspended = null;
        }

        if (suspended is not null)
        {
            LogClaimsResumed();
            suspended.TrySetResult();
        }
    }

    /// <summary>Renews the leases of the running handlers; false when there were none to renew.</summary>
    private async Task<bool> RenewAsync(CancellationToken cancellationToken)
    {
        var ids = running.RenewableIds;
        if (ids.Count == 0)
        {
            return false;
        }

        var leaseUntil = context.Now() + context.Options.LeaseDuration;
        var renewed = await store.RenewLeasesAsync(context.NodeId, ids, leaseUntil, cancellationToken).ConfigureAwait(false);
        running.Extended(renewed.Select(l => l.Id), leaseUntil);
        if (renewed.Count < ids.Count)
        {
            // A row not renewed was either taken from this node, or is being completed right now: its handler ended and
            // the completion holds the row's lock, which the renewal skips. Only a handler still running after two
            // renewals in a row that missed it has lost its lease.
            var renewedIds = renewed.Select(l => l.Id).ToHashSet();
            var missed = ids.Where(id => !renewedIds.Contains(id) && running.IsRunning(id)).ToHashSet();
            int lost = missed.Count(_missedLastRenewal.Contains);
            _missedLastRenewal = missed;
            if (lost > 0)
            {
                LogLeasesLost(lost);
            }
        }
        else
        {
            _missedLastRenewal = [];
        }

        // A cancellation whose notification was missed (the listener was reconnecting) is caught here.
        foreach (var lease in renewed.Where(l => l.CancelRequested))
        {
            running.RequestCancel(lease.Id);
        }

        return true;
    }

    private async Task ReleaseUnknownWritesAsync(CancellationToken stopToken)
    {
        // At shutdown the release of everything this node holds covers what is still queued here.
        int released = 0;
        var ids = _releaseIfStored.Keys.ToArray();
        if (ids.Length > 0)
        {
            int inserts = await store.ReleaseUnstartedAsync(context.NodeId, ids, context.Now(), stopToken).ConfigureAwait(false);
            foreach (var id in ids)
            {
                _releaseIfStored.TryRemove(id, out _);
            }

            slots.ReturnHeld(ids.Length);
            if (inserts > 0)
            {
                LogUnknownInsertsReleased(inserts);
            }

            released += inserts;
        }

        foreach (var (leaseUntil, held) in _claimsToRelease.ToArray())
        {
            int claimed = await store.ReleaseUnstartedClaimAsync(context.NodeId, leaseUntil, context.Now(), stopToken).ConfigureAwait(false);
            _claimsToRelease.TryRemove(leaseUntil, out _);
            slots.ReturnHeld(held);
            if (claimed > 0)
            {
                LogUnknownClaimReleased(claimed);
            }

            released += claimed;
        }

        if (released > 0)
        {
            signals.Pending();
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Count} running operations are no longer leased to this node")]
    private partial void LogLeasesLost(int count);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Renewals are not reaching the database and the leases of {Count} running operations end in {RemainingMs:0} ms or later: " +
                  "their handlers are cancelled, and claims wait until the database answers again and the operations are handed back")]
    private partial void LogLeasesLapsing(int count, double remainingMs);

    [LoggerMessage(Level = LogLevel.Information, Message = "The database answers lease renewals again: claims resume")]
    private partial void LogClaimsResumed();

    [LoggerMessage(Level = LogLevel.Warning, Message = "Handed back {Count} operations whose attempts this node gave up without storing an outcome")]
    private partial void LogHandedBack(int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Renewing leases failed")]
    private partial void LogRenewalFailed(Exception exception);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "{Count} operations whose insert's commit outcome was unknown were stored after all; returned to pending")]
    private partial void LogUnknownInsertsReleased(int count);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "{Count} operations taken by a claim whose commit outcome was unknown were claimed after all; returned to pending")]
    private partial void LogUnknownClaimReleased(int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Released {Count} unfinished operations back to pending")]
    private partial void LogReleased(int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "Releasing leases at shutdown failed; lease rescue will recover them")]
    private partial void LogReleaseFailed(Exception exception);

    /// <summary>An attempt given up without its outcome stored, until its operation is handed back.</summary>
    private sealed class GivenUp(int attempt)
    {
        public int Attempt { get; } = attempt;

        public TaskCompletionSource HandedBack { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
