using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Npgsql;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Worker;

/// <summary>
/// Keeps the leases of this node's running handlers: renews them every <see cref="OperationsOptions.LeaseRenewInterval"/>
/// (learning of cancellation requests on the way), hands back operations stored claimed at insert or claimed by a claim
/// whose commit outcome was unknown, and at shutdown releases everything this node still holds.
/// </summary>
internal sealed partial class LeaseKeeper(
    AttemptStore store,
    RunningHandlers running,
    HandlerSlots slots,
    IOperationSignals signals,
    WorkerContext context,
    ILogger<LeaseKeeper> logger)
{
    private readonly ConcurrentDictionary<Guid, byte> _releaseIfStored = new();
    private readonly ConcurrentDictionary<DateTime, int> _claimsToRelease = new();

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

    public async Task RenewUntilStoppedAsync(CancellationToken stopToken)
    {
        while (!stopToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(context.Options.LeaseRenewInterval, context.Time, stopToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            try
            {
                await ReleaseUnknownWritesAsync(stopToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopToken.IsCancellationRequested)
            {
                return;
            }
            catch (NpgsqlException ex)
            {
                // Tried again at the next renewal; the renewal below must not wait for it.
                LogRenewalFailed(ex);
            }

            try
            {
                await RenewAsync(stopToken).ConfigureAwait(false);
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

    private async Task RenewAsync(CancellationToken stopToken)
    {
        var ids = running.RenewableIds;
        if (ids.Count == 0)
        {
            return;
        }

        var renewed = await store.RenewLeasesAsync(context.NodeId, ids, context.Now() + context.Options.LeaseDuration, stopToken)
            .ConfigureAwait(false);
        if (renewed.Count < ids.Count)
        {
            LogLeasesLost(ids.Count - renewed.Count);
        }

        // A cancellation whose notification was missed (the listener was reconnecting) is caught here.
        foreach (var lease in renewed.Where(l => l.CancelRequested))
        {
            running.RequestCancel(lease.Id);
        }
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
}
