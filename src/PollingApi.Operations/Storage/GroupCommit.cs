using System.Threading.Channels;
using Npgsql;

namespace PollingApi.Operations.Storage;

/// <summary>
/// Group commit: each caller hands in one item and waits for its result; a few writer loops each take whatever
/// has queued up (up to a batch limit) and write it as one statement in one transaction. Under light load a batch
/// is a single item written at once (no timer, no added latency); under load many callers share one commit, so
/// the database does one durable flush and one statement for all of them. A caller's task completes only after
/// the commit that holds its item.
/// </summary>
/// <remarks>
/// When a batch of several items fails on an item's data (SQLSTATE class 22 or 23: a constraint, a bad value), each
/// item is written again on its own, so one bad item fails only its own caller. Any other failure (the connection,
/// the server shutting down) fails the whole batch: every caller sees the same exception. Whether that exception may
/// say "nothing was stored" is the batch writer's business: it settles a commit whose outcome is unknown before it
/// throws (see <see cref="OperationBatchWriter"/>). A caller whose request was cancelled before its item was taken into a batch is dropped, not written.
/// </remarks>
internal sealed class GroupCommit<TItem, TResult> : IAsyncDisposable
{
    private readonly Channel<Entry> _queue = Channel.CreateUnbounded<Entry>(new UnboundedChannelOptions { AllowSynchronousContinuations = false });
    private readonly Func<IReadOnlyList<TItem>, Task<IReadOnlyList<TResult>>> _writeBatch;
    private readonly int _maxBatch;
    private readonly Task[] _writers;

    /// <param name="writeBatch">Writes the items in one transaction and returns one result per item, in order.</param>
    /// <param name="writers">How many batches may be in flight at once.</param>
    /// <param name="maxBatch">The most items one statement takes.</param>
    public GroupCommit(Func<IReadOnlyList<TItem>, Task<IReadOnlyList<TResult>>> writeBatch, int writers, int maxBatch)
    {
        _writeBatch = writeBatch;
        _maxBatch = maxBatch;
        _writers = Enumerable.Range(0, writers).Select(_ => Task.Run(WriteUntilCompletedAsync)).ToArray();
    }

    /// <summary>
    /// Queues the item and completes with its result once the batch holding it is committed. Cancelled before the
    /// item is taken into a batch, it is not written and the task is cancelled; after that, it is written regardless.
    /// </summary>
    public Task<TResult> WriteAsync(TItem item, CancellationToken cancellationToken = default)
    {
        var entry = new Entry(item, new TaskCompletionSource<TResult>(TaskCreationOptions.RunContinuationsAsynchronously), cancellationToken);
        ObjectDisposedException.ThrowIf(!_queue.Writer.TryWrite(entry), this);

        return entry.Result.Task;
    }

    /// <summary>How many items wait to be taken into a batch.</summary>
    internal int Queued => _queue.Reader.Count;

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await Task.WhenAll(_writers).ConfigureAwait(false);
    }

    private async Task WriteUntilCompletedAsync()
    {
        var batch = new List<Entry>(_maxBatch);
        var items = new List<TItem>(_maxBatch);
        while (await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            items.Clear();
            while (batch.Count < _maxBatch && _queue.Reader.TryRead(out var entry))
            {
                if (entry.CancellationToken.IsCancellationRequested)
                {
                    entry.Result.TrySetCanceled(entry.CancellationToken);
                    continue;
                }

                batch.Add(entry);
                items.Add(entry.Item);
            }

            if (batch.Count > 0)
            {
                await WriteAsync(batch, items).ConfigureAwait(false);
            }
        }
    }

    private async Task WriteAsync(List<Entry> batch, List<TItem> items)
    {
        try
        {
            var results = await _writeBatch(items).ConfigureAwait(false);
            for (int i = 0; i < batch.Count; i++)
            {
                batch[i].Result.TrySetResult(results[i]);
            }
        }
        catch (PostgresException ex) when (batch.Count > 1 && IsDataError(ex))
        {
            foreach (var entry in batch)
            {
                await WriteAsync([entry], [entry.Item]).ConfigureAwait(false);
            }
        }
#pragma warning disable CA1031 // Whatever the write threw belongs to the callers waiting for it, not to this loop.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            foreach (var entry in batch)
            {
                entry.Result.TrySetException(ex);
            }
        }
    }

    private static bool IsDataError(PostgresException exception) =>
        exception.SqlState.StartsWith("22", StringComparison.Ordinal) || exception.SqlState.StartsWith("23", StringComparison.Ordinal);

    private sealed record Entry(TItem Item, TaskCompletionSource<TResult> Result, CancellationToken CancellationToken);
}
