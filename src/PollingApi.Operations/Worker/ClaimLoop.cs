using Microsoft.Extensions.Logging;
using Npgsql;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Worker;

/// <summary>
/// Claims due operations into the free handler slots, one statement a batch, and starts their attempts; waits for a
/// wake-up (or the poll interval) when the queue looks empty, and backs off while the database is away.
/// </summary>
internal sealed partial class ClaimLoop(
    AttemptStore store,
    CommitOutcomeResolver resolver,
    HandlerSlots slots,
    RunningHandlers running,
    AttemptRunner attempts,
    LeaseKeeper leases,
    IOperationSignals signals,
    KindSettingsCache kindSettings,
    DatabaseClock clock,
    WorkerContext context,
    ILogger<ClaimLoop> logger)
{
    /// <summary>Claims until <paramref name="stoppingToken"/> fires; handlers it starts stop with <paramref name="handlerToken"/>.</summary>
    public async Task RunAsync(CancellationToken handlerToken, CancellationToken stoppingToken)
    {
        // Leases and due times are the database's time: claim nothing before this node knows how far off its clock is.
        try
        {
            await clock.WhenSynchronisedAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        var databaseBackoff = TimeSpan.Zero;
        while (!stoppingToken.IsCancellationRequested)
        {
            // After this node gave up leases it could not renew, it takes no new work until the database answers it again.
            try
            {
                await leases.WhenClaimsAllowedAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            var (free, pendingMark) = slots.ReserveForClaim();
            int claimedCount = 0;
            bool moreDue = false;
            if (free > 0)
            {
                var now = context.Now();
                var leaseUntil = now + context.Options.LeaseDuration;
                try
                {
                    // A claim whose commit outcome is unknown is settled by finding the rows it took (by this node and its
                    // lease expiry) and running them, so they do not wait out their lease with an attempt counted.
                    bool settled = false;
                    await kindSettings.EnsureLoadedAsync(stoppingToken).ConfigureAwait(false);
                    var rules = kindSettings.ClaimRules;
                    var claimed = await resolver.RunAsync("a claim", ct => store.ClaimAsync(context.NodeId, free, now, leaseUntil, rules, ct), ct =>
                    {
                        settled = true;
                        return store.FindClaimedAsync(context.NodeId, leaseUntil, ct);
                    }, stoppingToken).ConfigureAwait(false);
                    claimedCount = claimed.Count;
                    moreDue = claimed.Count > 0 && claimed[0].MoreDue;
                    foreach (var operation in claimed)
                    {
                        operation.LeaseUntil = leaseUntil;
                        Start(operation, handlerToken);
                        signals.Changed(operation.Id);
                    }

                    slots.ClaimReturned(free, claimedCount, pendingMark, settled);
                    databaseBackoff = TimeSpan.Zero;
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                {
                    return;
                }
                catch (CommitOutcomeUnknownException ex)
                {
                    // Settling gave up: the claim may have taken rows, now running under this node with no handler. They are
                    // handed back when the database answers again, and their slots stay taken until then, so the node never
                    // holds more leases than it has slots.
                    leases.ReleaseClaimIfStored(leaseUntil, free);
                    claimedCount = free;
                    slots.ClaimReturned(free, 0, pendingMark, settled: true);
                    databaseBackoff = WorkerContext.NextDatabaseBackoff(databaseBackoff);
                    LogClaimFailed(ex, databaseBackoff);
                    await context.DelayAsync(databaseBackoff, stoppingToken).ConfigureAwait(false);
                    continue;
                }
                catch (NpgsqlException ex)
                {
                    databaseBackoff = WorkerContext.NextDatabaseBackoff(databaseBackoff);
                    LogClaimFailed(ex, databaseBackoff);
                    await context.DelayAsync(databaseBackoff, stoppingToken).ConfigureAwait(false);
                    continue;
                }
                finally
                {
                    slots.ReturnUnclaimed(free - claimedCount);
                }
            }

            // A full batch, or a queue that gave its whole share, means more may be due right away; otherwise wait for a
            // wake-up or the poll interval.
            if (claimedCount == 0 || (claimedCount < free && !moreDue))
            {
                await slots.WaitForWorkAsync(stoppingToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Starts an attempt of an operation this node holds, in a slot already taken.</summary>
    public void Start(ClaimedOperation operation, CancellationToken handlerToken) =>
        running.Start(operation.Id, operation.LeaseUntil ?? context.Now() + context.Options.LeaseDuration,
            ct => attempts.RunAsync(operation, ct, handlerToken), handlerToken);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Claiming operations failed; retrying in {Delay}")]
    private partial void LogClaimFailed(Exception exception, TimeSpan delay);
}
