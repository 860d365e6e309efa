using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using PollingApi.Operations.Model;

namespace PollingApi.Operations.Storage;

/// <summary>
/// This node's copies of finished operations, so that polling an operation that is done costs no query. A finished
/// operation changes only by a retry, a delete or the retention purge: a retry or delete on this node forgets the copy
/// before it answers, one on another node reaches here through the node's <c>LISTEN</c> connection (the retry or
/// delete statement sends the notification in its own transaction), and a copy whose operation is old enough to be
/// purged is not served. No copy is kept longer than five minutes.
/// </summary>
/// <remarks>
/// The cache serves only while the listener is connected: notifications sent while it is away are lost, so a
/// disconnect empties the cache and it stays off until the listener is back, and a reconnect bumps the generation. Every forget bumps a generation, and a
/// row read before a forget is never stored after it, so a copy can never outlive the notification that invalidates it.
/// Across nodes a delete or retry is therefore seen within the notification's delay (milliseconds); on one node at once.
/// </remarks>
internal sealed class FinishedOperationCache : IDisposable
{
    // However often it is read, a copy is read from the database again after this long: a bound on any staleness
    // the notifications could ever miss.
    private static readonly TimeSpan CopyLifetime = TimeSpan.FromMinutes(5);

    private readonly MemoryCache? _rows;
    private readonly TimeSpan _retention;
    private long _generation;
    private volatile bool _serving;

    public FinishedOperationCache(IOptions<OperationsOptions> options)
    {
        var settings = options.Value;
        _retention = settings.Retention;
        if (settings.FinishedOperationCacheSize > 0)
        {
            _rows = new MemoryCache(new MemoryCacheOptions
            {
                SizeLimit = settings.FinishedOperationCacheSize,
                CompactionPercentage = 0.25,
            });
        }
    }

    /// <summary>Whether copies are kept and served now (the listener is connected and the cache is on).</summary>
    public bool IsServing => _rows is not null && _serving;

    /// <summary>Take this before reading a row to offer; see <see cref="Offer"/>.</summary>
    public long Generation => Interlocked.Read(ref _generation);

    /// <summary>The finished operation's row, if this node has a copy that may be served now.</summary>
    public bool TryGet(Guid id, string? owner, DateTime now, out OperationRow row)
    {
        row = null!;
        if (_rows is null || !_serving || !_rows.TryGetValue(id, out OperationRow? cached) || cached is null)
        {
            return false;
        }

        // Old enough to be purged (or about to be): ask the database, which answers 410 once it is gone.
        if ((owner is not null && cached.Owner != owner) || cached.CompletedAt is not { } completedAt || completedAt <= now - _retention + TimeSpan.FromMinutes(1))
        {
            return false;
        }

        row = cached;
        return true;
    }

    /// <summary>
    /// Keeps a copy of <paramref name="row"/> if it is finished and nothing was forgotten since
    /// <paramref name="generationBeforeRead"/>, taken before the statement that returned it.
    /// </summary>
    public void Offer(OperationRow row, long generationBeforeRead)
    {
        if (_rows is null || !_serving || !OperationStatus.IsTerminal(row.Status) || Generation != generationBeforeRead)
        {
            return;
        }

        _rows.Set(row.Id, row, new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = CopyLifetime });
        // A forget between the check above and the Set must win.
        if (Generation != generationBeforeRead)
        {
            _rows.Remove(row.Id);
        }
    }

    /// <summary>The operation was retried or deleted (here or on another node): drop its copy.</summary>
    public void Forget(Guid id)
    {
        Interlocked.Increment(ref _generation);
        _rows?.Remove(id);
    }

    /// <summary>The listener is connected: copies may be kept and served.</summary>
    public void Start()
    {
        // A row read while the listener was away may have been changed meanwhile, unheard: it must not be kept.
        Interlocked.Increment(ref _generation);
        _serving = true;
    }

    /// <summary>The listener lost its connection: forget everything and keep nothing until it is back.</summary>
    public void Stop()
    {
        _serving = false;
        Interlocked.Increment(ref _generation);
        _rows?.Clear();
    }

    public void Dispose() => _rows?.Dispose();
}
