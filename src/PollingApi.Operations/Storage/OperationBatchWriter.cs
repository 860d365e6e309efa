using Microsoft.Extensions.Options;
using PollingApi.Operations.Telemetry;

namespace PollingApi.Operations.Storage;

/// <summary>
/// The two writes every operation makes, its insert and its successful outcome, in group commits (see
/// <see cref="GroupCommit{TItem, TResult}"/>): concurrent submits share one INSERT and one durable commit,
/// concurrent completions one UPDATE and one commit. A caller's task completes after the commit that holds its write.
/// </summary>
/// <remarks>
/// When a batch's connection fails after the statement was sent, the batch is settled before anyone is answered
/// (<see cref="CommitOutcomeResolver"/>): the inserts not stored are written again and the completions already stored are
/// read back, so every caller gets the answer the database holds. When it cannot be settled in time, every caller of
/// the batch gets <see cref="CommitOutcomeUnknownException"/>.
/// </remarks>
internal sealed class OperationBatchWriter : IAsyncDisposable
{
    // Up to four batches in flight, so concurrent batches share PostgreSQL's WAL flushes instead of queueing behind
    // each other; 256 rows keep a statement to a few milliseconds.
    private const int Writers = 4;
    private const int MaxBatch = 256;

    private readonly OperationStore _store;
    private readonly AttemptStore _attempts;
    private readonly CommitOutcomeResolver _resolver;
    private readonly TimeSpan _leaseDuration;
    private readonly GroupCommit<OperationInsert, bool> _inserts;
    private readonly GroupCommit<OperationCompletion, OperationRow?> _completions;

    private readonly OperationMetrics _metrics;

    public OperationBatchWriter(OperationStore store, AttemptStore attempts, CommitOutcomeResolver resolver, IOptions<OperationsOptions> options,
        OperationMetrics metrics)
    {
        ArgumentNullException.ThrowIfNull(options);
        _metrics = metrics;
        _store = store;
        _attempts = attempts;
        _resolver = resolver;
        _leaseDuration = options.Value.LeaseDuration;
        _inserts = new GroupCommit<OperationInsert, bool>(InsertBatchAsync, Writers, MaxBatch);
        _completions = new GroupCommit<OperationCompletion, OperationRow?>(CompleteBatchAsync, Writers, MaxBatch);
    }

    /// <summary>
    /// Stores a new operation (see <see cref="OperationStore.InsertManyAsync"/>); completes once it is committed.
    /// Cancelled before its batch is formed, it is not stored. Throws <see cref="CommitOutcomeUnknownException"/> when
    /// its batch's commit could not be settled in time: the operation may or may not be stored.
    /// </summary>
    public Task InsertAsync(OperationInsert insert, CancellationToken cancellationToken = default) =>
        _inserts.WriteAsync(insert, cancellationToken);

    /// <summary>Stores a successful attempt's result, fenced: the stored row, or null when the lease was lost meanwhile.</summary>
    public Task<OperationRow?> CompleteAsync(OperationCompletion completion) => _completions.WriteAsync(completion);

    /// <summary>How many inserts wait for a writer to take them into a batch.</summary>
    internal int QueuedInserts => _inserts.Queued;

    public async ValueTask DisposeAsync()
    {
        await _inserts.DisposeAsync().ConfigureAwait(false);
        await _completions.DisposeAsync().ConfigureAwait(false);
    }

    private async Task<IReadOnlyList<bool>> InsertBatchAsync(IReadOnlyList<OperationInsert> batch)
    {
        try
        {
            await _store.InsertManyAsync(batch, _leaseDuration, CancellationToken.None).ConfigureAwait(false);
            _metrics.GroupCommitted(batch.Count);
        }
        catch (CommitOutcomeUnknownException unknown)
        {
            string what = $"a batch of {batch.Count} submits";
            var written = await _resolver.SettleAsync(what, ct => _store.InsertMissingAsync(batch, _leaseDuration, ct), unknown,
                CancellationToken.None).ConfigureAwait(false);
            _resolver.ReportSettled(what, batch.Count - written.Count, written.Count);
        }

        return Enumerable.Repeat(true, batch.Count).ToArray();
    }

    private async Task<IReadOnlyList<OperationRow?>> CompleteBatchAsync(IReadOnlyList<OperationCompletion> batch)
    {
        IReadOnlyList<OperationRow> stored;
        try
        {
            stored = await _attempts.CompleteManyAsync(batch, CancellationToken.None).ConfigureAwait(false);
        }
        catch (CommitOutcomeUnknownException unknown)
        {
            string what = $"a batch of {batch.Count} completions";
            stored = await _resolver.SettleAsync<IReadOnlyList<OperationRow>>(what, async ct =>
            {
                // Written again where the first write did not commit (the fence still holds), read back where it did.
                var written = await _attempts.CompleteManyAsync(batch, ct).ConfigureAwait(false);
                var rest = batch.Where(c => !written.Any(row => row.Id == c.Id && row.Attempts == c.Attempt)).ToList();
                var earlier = rest.Count == 0 ? [] : await _attempts.FindSucceededAsync(rest, ct).ConfigureAwait(false);
                _resolver.ReportSettled(what, earlier.Count, written.Count);
                return [.. written, .. earlier];
            }, unknown, CancellationToken.None).ConfigureAwait(false);
        }

        // Keyed by attempt too: a stale attempt and the attempt that took over can share a batch.
        var byAttempt = stored.ToDictionary(row => (row.Id, row.Attempts));
        return batch.Select(completion => byAttempt.GetValueOrDefault((completion.Id, completion.Attempt))).ToArray();
    }

}
