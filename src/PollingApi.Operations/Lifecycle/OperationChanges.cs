using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;
using PollingApi.Operations.Telemetry;

namespace PollingApi.Operations.Lifecycle;

/// <summary>How a cancel, retry or delete came out.</summary>
internal enum ChangeStatus
{
    /// <summary>Applied (or, for cancel, already so); <see cref="ChangeResult.Row"/> is the operation now (none after a delete).</summary>
    Changed,

    /// <summary>No such operation; <see cref="ChangeResult.Expired"/> tells a purged one.</summary>
    Missing,

    /// <summary>Not allowed in the operation's state; <see cref="ChangeResult.Row"/> is the operation, <see cref="ChangeResult.Rule"/> the rule.</summary>
    Conflict,

    /// <summary>The operation's command does not allow the change; <see cref="ChangeResult.Rule"/> says why.</summary>
    Refused,

    /// <summary>The operation kept changing state while the change was tried.</summary>
    Busy,

    /// <summary>The connection broke after the change was sent, and whether it was committed could not be settled in time.</summary>
    OutcomeUnknown,
}

internal sealed record ChangeResult(ChangeStatus Status, OperationRow? Row = null, string? Rule = null, bool Expired = false)
{
    public static ChangeResult Changed(OperationRow? row) => new(ChangeStatus.Changed, row);

    public static ChangeResult Conflict(OperationRow row, string rule) => new(ChangeStatus.Conflict, row, rule);

    public static ChangeResult Refused(OperationRow row, string rule) => new(ChangeStatus.Refused, row, rule);
}

/// <summary>
/// Cancel, retry and delete: each a conditional statement that only applies from the states that allow it, signalled
/// when it applies. A change whose commit outcome is unknown is settled (see <see cref="CommitOutcomeResolver"/>) before
/// it is answered.
/// </summary>
internal sealed class OperationChanges(
    OperationStore store,
    OperationQueries queries,
    CommandRegistry commands,
    CommitOutcomeResolver resolver,
    OperationSignals signals,
    OperationMetrics metrics,
    TimeProvider timeProvider)
{
    private const string CancelRule = "only a pending or running operation can be cancelled";
    private const string RetryRule = "only a failed or cancelled operation can be retried";
    private const string DeleteRule = "only a succeeded, failed or cancelled operation can be deleted; cancel it first";

    /// <summary>
    /// A pending operation is cancelled at once; a running one has cancellation requested (its handler's token fires
    /// wherever it runs). Cancelling is idempotent, so an unknown outcome is settled by running it again.
    /// </summary>
    public Task<ChangeResult> CancelAsync(OperationCaller caller, Guid id, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow().UtcDateTime;
        return ChangeAsync("cancellation", (settling, ct) => CancelAsync(caller.OwnerFilter, id, now, settling, ct), cancellationToken);
    }

    /// <summary>
    /// A failed or cancelled operation goes back to pending with fresh attempts. The update is conditional on the
    /// version it saw the operation failed or cancelled at. Only a retry or a delete changes a finished operation, so
    /// when settling, a later version means the retry whose acknowledgement was lost (or a concurrent one) was applied,
    /// and the same version means it was not: it is sent again.
    /// </summary>
    public Task<ChangeResult> RetryAsync(OperationCaller caller, Guid id, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow().UtcDateTime;
        int? sentAtVersion = null;
        return ChangeAsync("retry", async (settling, ct) =>
        {
            var current = await store.FindAsync(id, caller.OwnerFilter, ct).ConfigureAwait(false);
            if (current is null)
            {
                return MissingResult(id);
            }

            if (settling && sentAtVersion is { } sent && current.Version != sent)
            {
                return Retried(current);
            }

            if (current.Status is not (OperationStatus.Failed or OperationStatus.Cancelled))
            {
                return ChangeResult.Conflict(current, RetryRule);
            }

            if (commands.Find(current.Kind)?.Replay.RefusalFor(current, now) is { } refusal)
            {
                return ChangeResult.Refused(current, refusal);
            }

            sentAtVersion = current.Version;
            var retried = await store.RetryAsync(id, caller.OwnerFilter, current.Version, now, ct).ConfigureAwait(false);
            return retried is not null ? Retried(retried) : await NotChangedAsync(caller.OwnerFilter, id, RetryRule, ct).ConfigureAwait(false);
        }, cancellationToken);

        ChangeResult Retried(OperationRow row)
        {
            signals.Forgotten(id);
            signals.Pending();
            return ChangeResult.Changed(row);
        }
    }

    /// <summary>
    /// Forgets a finished operation. Settling a delete whose acknowledgement was lost, an operation that is gone counts
    /// as deleted (by that delete, or another).
    /// </summary>
    public Task<ChangeResult> DeleteAsync(OperationCaller caller, Guid id, CancellationToken cancellationToken) =>
        ChangeAsync("delete", async (settling, ct) =>
        {
            if (await store.DeleteTerminalAsync(id, caller.OwnerFilter, ct).ConfigureAwait(false)
                || (settling && await store.FindAsync(id, caller.OwnerFilter, ct).ConfigureAwait(false) is null))
            {
                signals.Forgotten(id);
                return ChangeResult.Changed(null);
            }

            return await NotChangedAsync(caller.OwnerFilter, id, DeleteRule, ct).ConfigureAwait(false);
        }, cancellationToken);

    private async Task<ChangeResult> CancelAsync(string? owner, Guid id, DateTime now, bool settling, CancellationToken cancellationToken)
    {
        // A pending operation can turn running between two statements, so try each transition in turn.
        for (int round = 0; round < 3; round++)
        {
            var cancelled = await store.CancelPendingAsync(id, owner, OperationErrors.Cancelled, now, cancellationToken)
                .ConfigureAwait(false);
            if (cancelled is not null)
            {
                metrics.Completed(cancelled.Kind, OperationStatus.Cancelled, cancelled.CreatedAt, now);
                signals.Finished(id);
                return ChangeResult.Changed(cancelled);
            }

            var requested = await store.RequestCancelAsync(id, owner, now, cancellationToken).ConfigureAwait(false);
            if (requested is not null)
            {
                signals.CancelRequested(id);
                return ChangeResult.Changed(requested);
            }

            var current = await store.FindAsync(id, owner, cancellationToken).ConfigureAwait(false);
            switch (current?.Status)
            {
                case null:
                    return MissingResult(id);
                case OperationStatus.Cancelled:
                    if (settling)
                    {
                        // Perhaps cancelled by the write whose acknowledgement was lost: nobody was told yet.
                        signals.Finished(id);
                    }

                    return ChangeResult.Changed(current);
                case OperationStatus.Running when current.CancelRequested:
                    if (settling)
                    {
                        signals.CancelRequested(id);
                    }

                    return ChangeResult.Changed(current);
                case OperationStatus.Succeeded:
                case OperationStatus.Failed:
                    return ChangeResult.Conflict(current, CancelRule);
            }
        }

        return new ChangeResult(ChangeStatus.Busy);
    }

    /// <summary>
    /// Runs a change (<paramref name="run"/> with <c>settling</c> false). When its commit outcome is unknown, runs it
    /// again with <c>settling</c> true until it answers; when that cannot be done in time, the outcome stays unknown.
    /// </summary>
    private async Task<ChangeResult> ChangeAsync(string change, Func<bool, CancellationToken, Task<ChangeResult>> run,
        CancellationToken cancellationToken)
    {
        try
        {
            return await resolver.RunAsync($"a {change}", ct => run(false, ct), ct => run(true, ct), cancellationToken).ConfigureAwait(false);
        }
        catch (CommitOutcomeUnknownException)
        {
            return new ChangeResult(ChangeStatus.OutcomeUnknown);
        }
    }

    /// <summary>Why a conditional change matched no row: the operation is not there, or its state breaks <paramref name="rule"/>.</summary>
    private async Task<ChangeResult> NotChangedAsync(string? owner, Guid id, string rule, CancellationToken cancellationToken)
    {
        var current = await store.FindAsync(id, owner, cancellationToken).ConfigureAwait(false);
        return current is null ? MissingResult(id) : ChangeResult.Conflict(current, rule);
    }

    private ChangeResult MissingResult(Guid id) => new(ChangeStatus.Missing, Expired: queries.Missing(id).Expired);
}
