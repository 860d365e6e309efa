using Microsoft.Extensions.Options;
using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Lifecycle;

/// <summary>What a read of an operation found: the operation, or why there is none.</summary>
internal readonly record struct Lookup(OperationRow? Row, bool Expired)
{
    public static Lookup Of(OperationRow row) => new(row, Expired: false);
}

/// <summary>
/// Reads operations for the API: one (from the node's finished-operation cache when it can, waiting for it to finish
/// when asked) or a page of them.
/// </summary>
internal sealed class OperationQueries(
    OperationStore store,
    FinishedOperationCache finishedOperations,
    OperationWaiting waiting,
    IOptions<OperationsOptions> options,
    TimeProvider timeProvider)
{
    /// <summary>The caller's operation, after waiting up to <paramref name="waitFor"/> for it to finish.</summary>
    public async Task<Lookup> GetAsync(OperationCaller caller, Guid id, TimeSpan waitFor, CancellationToken cancellationToken)
    {
        if (finishedOperations.TryGet(id, caller.OwnerFilter, timeProvider.GetUtcNow().UtcDateTime, out var finished))
        {
            return Lookup.Of(finished);
        }

        long generation = finishedOperations.Generation;
        using var waiter = waitFor > TimeSpan.Zero ? waiting.Register(id) : null;
        var row = await store.FindAsync(id, caller.OwnerFilter, cancellationToken).ConfigureAwait(false);
        if (row is not null && waiter is not null && !OperationStatus.IsTerminal(row.Status))
        {
            row = await waiting.UntilDoneAsync(id, row, waiter, waitFor, cancellationToken).ConfigureAwait(false);
        }

        if (row is null)
        {
            return Missing(id);
        }

        finishedOperations.Offer(row, generation);
        return Lookup.Of(row);
    }

    /// <summary>
    /// A page of the caller's operations, newest first: one more than the query's limit when there is a next page.
    /// A tenant filter picks one tenant for an admin; for anyone else it can only name their own tenant (another tenant's
    /// operations are not there for them, so that page is empty).
    /// </summary>
    public async Task<IReadOnlyList<OperationRow>> ListAsync(OperationCaller caller, OperationQuery query, CancellationToken cancellationToken)
    {
        string? owner = caller.OwnerFilter ?? query.Tenant;
        if (query.Tenant is not null && owner != query.Tenant)
        {
            return [];
        }

        return await store.ListAsync(owner, query with { Limit = query.Limit + 1 }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The caller's operation's attempt history; null when there is no such operation (for this caller).</summary>
    public Task<AttemptHistoryRow?> AttemptsAsync(OperationCaller caller, Guid id, CancellationToken cancellationToken) =>
        store.FindAttemptsAsync(id, caller.OwnerFilter, cancellationToken);

    /// <summary>No operation with this id: expired (older than the retention period, so purged) or never there.</summary>
    public Lookup Missing(Guid id) =>
        new(null, OperationExpiry.IsPastRetention(id, timeProvider.GetUtcNow().UtcDateTime, options.Value.Retention));
}
