using Microsoft.Extensions.Logging;
using Npgsql;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Lifecycle;

/// <summary>
/// The changes of every operation, as this node hears them, for the filtered event streams
/// (<c>GET /v1/operations/events</c>). It runs only while a stream is open (and for <see cref="Retention"/> after the
/// last one closes, so a client that reconnects can resume): it collects the ids the signal fan-out reports, reads those
/// rows once per <see cref="BatchInterval"/> (20 ms) however many streams are open, and keeps the last events in memory, in
/// order, numbered. A stream resumes from its <c>Last-Event-ID</c> when that event is still kept on this node.
/// </summary>
internal sealed partial class OperationChangeFeed(
    OperationWatchers watchers,
    OperationStore store,
    TimeProvider timeProvider,
    ILogger<OperationChangeFeed> logger) : IDisposable
{
    /// <summary>How long events are kept for resuming, at most <see cref="Capacity"/> of them.</summary>
    public static readonly TimeSpan Retention = TimeSpan.FromMinutes(5);

    public const int Capacity = 10_000;

    private static readonly TimeSpan BatchInterval = TimeSpan.FromMilliseconds(20);

    /// <summary>Names this node's numbering: an event id from another node (or from before a restart) is not resumed.</summary>
    public string Epoch { get; } = Guid.NewGuid().ToString("N")[..12];

    private readonly Lock _lock = new();
    // In sequence order without gaps (numbers are given in order and only the oldest are dropped), so an event's place
    // is its number minus the first one's.
    private readonly List<FeedEvent> _events = [];
    private readonly HashSet<Guid> _changed = [];
    // The version of each operation's latest kept event: the same change heard twice (here and as its own notification's
    // echo) is one event.
    private readonly Dictionary<Guid, int> _keptVersions = [];
    private TaskCompletionSource _appended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _collected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _sequence;
    private long _coveredFrom = 1;
    private int _streams;
    private long _lastStreamClosedAt;
    private IDisposable? _subscription;
    private CancellationTokenSource? _running;

    /// <summary>The number the next event will get.</summary>
    public long Next
    {
        get
        {
            lock (_lock)
            {
                return _sequence + 1;
            }
        }
    }

    /// <summary>A stream opens: the feed runs (starting if it was not). Dispose the result when the stream ends.</summary>
    public IDisposable Open()
    {
        lock (_lock)
        {
            _streams++;
            if (_running is null)
            {
                _coveredFrom = _sequence + 1;
                _running = new CancellationTokenSource();
                _subscription = watchers.WatchEverything(Collect);
                _ = RunAsync(_running.Token);
            }
        }

        return new Closer(this);
    }

    /// <summary>Whether events from <paramref name="sequence"/> on are all still kept (so a stream can resume there).</summary>
    public bool Covers(long sequence)
    {
        lock (_lock)
        {
            long oldest = _events.Count > 0 ? _events[0].Sequence : _sequence + 1;
            return sequence >= Math.Max(oldest, _coveredFrom) && sequence <= _sequence + 1;
        }
    }

    /// <summary>
    /// Up to <paramref name="max"/> events numbered <paramref name="from"/> and later, a task that completes when more
    /// arrive, and whether events before the first one returned are no longer kept (a stream that fell further behind
    /// than the feed keeps).
    /// </summary>
    public (IReadOnlyList<FeedEvent> Events, Task More, bool Skipped) ReadFrom(long from, int max)
    {
        lock (_lock)
        {
            long oldest = _events.Count > 0 ? _events[0].Sequence : _sequence + 1;
            int start = (int)Math.Max(0, from - oldest);
            int count = Math.Clamp(_events.Count - start, 0, max);
            return (_events.GetRange(start, count), _appended.Task, from < oldest && from <= _sequence);
        }
    }

    private void Collect(Guid id)
    {
        lock (_lock)
        {
            if (id != Guid.Empty)
            {
                _changed.Add(id);
            }

            _collected.TrySetResult();
        }
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            Task collected;
            lock (_lock)
            {
                collected = _collected.Task;
            }

            try
            {
                await collected.WaitAsync(Retention, timeProvider, cancellationToken).ConfigureAwait(false);
                await Task.Delay(BatchInterval, timeProvider, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Nothing changed for a while: stop if no stream is open.
            }
            catch (OperationCanceledException)
            {
                return;
            }

            Guid[] ids;
            lock (_lock)
            {
                ids = [.. _changed];
                _changed.Clear();
                _collected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            if (ids.Length > 0)
            {
                await ReadAndAppendAsync(ids, cancellationToken).ConfigureAwait(false);
            }

            if (StopIfIdle())
            {
                return;
            }
        }
    }

    private async Task ReadAndAppendAsync(Guid[] ids, CancellationToken cancellationToken)
    {
        IReadOnlyList<OperationRow> rows;
        try
        {
            rows = await store.FindManyAsync(ids, cancellationToken).ConfigureAwait(false);
        }
        catch (NpgsqlException ex)
        {
            // The streams miss these changes' events; the operations' own streams and GETs still show them.
            LogReadFailed(ex, ids.Length);
            return;
        }
        catch (OperationCanceledException)
        {
            return;
        }

        var now = timeProvider.GetUtcNow().UtcDateTime;
        TaskCompletionSource appended;
        lock (_lock)
        {
            foreach (var row in rows.OrderBy(r => r.UpdatedAt).ThenBy(r => r.Id))
            {
                if (_keptVersions.TryGetValue(row.Id, out int kept) && kept >= row.Version)
                {
                    continue;
                }

                _keptVersions[row.Id] = row.Version;
                _events.Add(new FeedEvent(++_sequence, row, now));
            }

            int drop = 0;
            while (drop < _events.Count && (_events.Count - drop > Capacity || now - _events[drop].At > Retention))
            {
                var dropped = _events[drop].Row;
                if (_keptVersions.TryGetValue(dropped.Id, out int kept) && kept == dropped.Version)
                {
                    _keptVersions.Remove(dropped.Id);
                }

                drop++;
            }

            _events.RemoveRange(0, drop);

            appended = _appended;
            _appended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        appended.TrySetResult();
    }

    private bool StopIfIdle()
    {
        lock (_lock)
        {
            if (_streams > 0 || timeProvider.GetElapsedTime(_lastStreamClosedAt) < Retention)
            {
                return false;
            }

            _subscription?.Dispose();
            _subscription = null;
            _running?.Dispose();
            _running = null;
            _events.Clear();
            _keptVersions.Clear();
            return true;
        }
    }

    private void Close()
    {
        lock (_lock)
        {
            _streams--;
            _lastStreamClosedAt = timeProvider.GetTimestamp();
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _running?.Cancel();
            _running?.Dispose();
            _running = null;
            _subscription?.Dispose();
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reading {Count} changed operations for the event streams failed")]
    private partial void LogReadFailed(Exception exception, int count);

    private sealed class Closer(OperationChangeFeed feed) : IDisposable
    {
        private int _closed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _closed, 1) == 0)
            {
                feed.Close();
            }
        }
    }
}

/// <summary>One change as the feed numbered it: the operation as it was read after the change.</summary>
internal sealed record FeedEvent(long Sequence, OperationRow Row, DateTime At)
{
    private Written? _written;

    /// <summary>
    /// The event as the streams write it, made once for all the streams that share <paramref name="self"/> (the
    /// operation's link, which depends on the host the request came to), not once per stream.
    /// </summary>
    public string WrittenFor(string self, Func<string> write)
    {
        if (_written is { } cached && cached.Self == self)
        {
            return cached.Text;
        }

        string text = write();
        _written = new Written(self, text);
        return text;
    }

    private sealed record Written(string Self, string Text);
}
