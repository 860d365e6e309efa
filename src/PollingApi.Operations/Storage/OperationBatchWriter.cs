using Microsoft.Extensions.Options;

namespace PollingApi.Operations.Storage;

/// <summary>
/// The two writes every operation makes, its insert and its successful outcome, in group commits (see
/// <see cref="GroupCommit{TItem, TResult}"/>): concurrent submits share one INSERT and one durable commit,
/// concurrent completions one UPDATE and one commit. A caller's task completes after the commit that holds its write.
/// </summary>
public sealed class OperationBatchWriter : IAsyncDisposable
{
    // Up to four batches in flight, so concurrent batches share PostgreSQL's WAL flushes instead of queueing behind
    // each other; 256 rows keep a statement to a few milliseconds.
    private const int Writers = 4;
    private const int MaxBatch = 256;

    private readonly GroupCommit<OperationInsert, bool> _inserts;
    private readonly GroupCommit<OperationCompletion, OperationRow?> _completions;

    public OperationBatchWriter(OperationStore store, IOptions<OperationsOptions> options)
    {
        var leaseDuration = options.Value.LeaseDuration;
        _inserts = new GroupCommit<OperationInsert, bool>(async batch =>
        {
            await store.InsertManyAsync(batch, leaseDuration, CancellationToken.None).ConfigureAwait(false);
            return Enumerable.Repeat(true, batch.Count).ToArray();
        }, Writers, MaxBatch);
        _completions = new GroupCommit<OperationCompletion, OperationRow?>(async batch =>
        {
            // Keyed by attempt too: a stale attempt and the attempt that took over can share a batch.
            var stored = (await store.CompleteManyAsync(batch, CancellationToken.None).ConfigureAwait(false))
                .ToDictionary(row => (row.Id, row.Attempts));
            return batch.Select(completion => stored.GetValueOrDefault((completion.Id, completion.Attempt))).ToArray();
        }, Writers, MaxBatch);
    }

    /// <summary>
    /// Stores a new operation (see <see cref="OperationStore.InsertManyAsync"/>); completes once it is committed.
    /// Cancelled before its batch is formed, it is not stored.
    /// </summary>
    public Task InsertAsync(OperationInsert insert, CancellationToken cancellationToken = default) =>
        _inserts.WriteAsync(insert, cancellationToken);

    /// <summary>Stores a successful attempt's result, fenced: the stored row, or null when the lease was lost meanwhile.</summary>
    public Task<OperationRow?> CompleteAsync(OperationCompletion completion) => _completions.WriteAsync(completion);

    public async ValueTask DisposeAsync()
    {
        await _inserts.DisposeAsync().ConfigureAwait(false);
        await _completions.DisposeAsync().ConfigureAwait(false);
    }
}
