using PollingApi.Operations.Storage;
using PollingApi.Operations.Worker;

namespace PollingApi.Operations.Lifecycle;

/// <summary>
/// Stores a submitted operation: without an idempotency key through the group-committed insert (claimed at insert when
/// this node's worker has a slot to spare), with one through the key's unique index. A commit whose acknowledgement is
/// lost is settled before anyone is answered.
/// </summary>
internal sealed class OperationInserter(
    OperationStore store,
    OperationBatchWriter batchWriter,
    CommitOutcomeResolver resolver,
    OperationWorker worker,
    KindSettingsCache kindSettings,
    WorkerContext context)
{
    private const string KeyedSubmit = "a submit with an idempotency key";

    /// <summary>
    /// Stores an operation without an idempotency key. When this node's worker has a slot to spare, the row is stored
    /// already claimed by this node and the worker runs it at once, with no claim statement and no wake-up in between.
    /// Throws <see cref="CommitOutcomeUnknownException"/> when its commit could not be settled.
    /// </summary>
    public async Task<OperationRow> InsertAsync(NewOperation operation, DateTime createdAt, CancellationToken cancellationToken)
    {
        // A scheduled operation waits for its time in the table like any pending one; so does one a claim must count
        // against a cap, or must not take (its kind paused).
        bool claim = (operation.ScheduledAt is not { } scheduled || scheduled <= createdAt) && kindSettings.AllowsClaimAtInsert(operation.Kind)
                     && worker.TryPromiseSlot();
        var insert = new OperationInsert(operation, createdAt, claim ? context.NodeId : null);
        bool committed = false;
        try
        {
            await batchWriter.InsertAsync(insert, cancellationToken).ConfigureAwait(false);
            committed = true;
        }
        catch (CommitOutcomeUnknownException) when (claim)
        {
            claim = false;
            worker.BreakPromiseOfUnknownInsert(operation.Id);
            throw;
        }
        finally
        {
            if (claim && !committed)
            {
                worker.BreakPromise();
            }
        }

        if (claim)
        {
            var claimed = insert.ToClaimed();
            claimed.LeaseUntil = createdAt + context.Options.LeaseDuration;
            worker.RunPromised(claimed);
        }

        return insert.ToRow(context.Options.LeaseDuration);
    }

    /// <summary>
    /// Stores an operation with an idempotency key: null when the key belongs to another operation. An unknown commit
    /// outcome is settled by inserting again: the key's unique index makes that store nothing when the first insert was
    /// committed (waiting for it if it is still committing), and the key then leads to this very operation.
    /// </summary>
    public Task<OperationRow?> InsertWithKeyAsync(NewOperation operation, DateTime createdAt, CancellationToken cancellationToken) =>
        resolver.RunAsync(KeyedSubmit, ct => store.InsertAsync(operation, createdAt, ct), async ct =>
        {
            var written = await store.InsertAsync(operation, createdAt, ct).ConfigureAwait(false);
            var stored = written is null
                ? await store.FindByIdempotencyKeyAsync(operation.Owner, operation.IdempotencyKey!, ct).ConfigureAwait(false)
                : null;
            bool ours = stored?.Id == operation.Id;
            resolver.ReportSettled(KeyedSubmit, ours ? 1 : 0, written is null ? 0 : 1);
            return written ?? (ours ? stored : null);
        }, cancellationToken);
}
