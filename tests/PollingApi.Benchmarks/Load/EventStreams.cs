using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace PollingApi.Benchmarks.Load;

/// <summary>
/// Many server-sent event streams held open at once, as subscribers do (scenario (i)): each on its own keep-alive
/// HTTP/1.1 connection of a client of their own, read continuously. Every stream counts the events it receives (and the
/// <c>done</c> ones) with a vectorised search for <c>\nevent: </c> in what it reads, so that 1,000 streams cost the driver
/// as little CPU as possible; one of them, the probe, parses its events and notes when each operation's <c>done</c>
/// arrived. A stream that ends or fails before <see cref="DisposeAsync"/> is counted as dropped.
/// </summary>
internal sealed class EventStreams : IAsyncDisposable
{
    private const int BufferSize = 16 * 1024;
    private static readonly TimeSpan OpenTimeout = TimeSpan.FromSeconds(90);
    private static readonly byte[] EventLine = "\nevent: "u8.ToArray();
    private static readonly byte[] DoneLine = "\nevent: done\n"u8.ToArray();

    private readonly HttpClient _http;
    private readonly CancellationTokenSource _stop;
    private readonly List<Task> _readers = [];
    private readonly ConcurrentDictionary<Guid, long> _doneArrivals = new();
    private readonly ConcurrentQueue<string> _dropReasons = new();
    private long _events;
    private long _doneEvents;
    private int _dropped;
    private int _disposed;

    private EventStreams(HttpClient http, CancellationToken cancellationToken)
    {
        _http = http;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
    }

    /// <summary>Events (of any name) received so far across all streams.</summary>
    public long Events => Volatile.Read(ref _events);

    /// <summary><c>done</c> events received so far across all streams.</summary>
    public long DoneEvents => Volatile.Read(ref _doneEvents);

    /// <summary>Streams that ended or failed while they should have stayed open.</summary>
    public int Dropped => Volatile.Read(ref _dropped);

    /// <summary>Why the first dropped streams ended.</summary>
    public IReadOnlyList<string> DropReasons => [.. _dropReasons.Take(3)];

    /// <summary>Operation id → Stopwatch timestamp at which its <c>done</c> event arrived on the probe stream.</summary>
    public IReadOnlyDictionary<Guid, long> DoneArrivals => _doneArrivals;

    /// <summary>
    /// Opens <paramref name="count"/> streams of <paramref name="streamUri"/> (at most 64 connecting at a time) and returns once
    /// every one has answered 200 with <c>text/event-stream</c>: from then on the node has each of them registered.
    /// </summary>
    public static async Task<EventStreams> OpenAsync(Uri streamUri, string apiKey, int count, CancellationToken cancellationToken)
    {
        var http = new HttpClient(new SocketsHttpHandler
        {
            // One connection per stream, never recycled while it is open, plus room for nothing else: this client only streams.
            MaxConnectionsPerServer = count + 8,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10),
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromSeconds(10),
        })
        {
            DefaultRequestVersion = HttpVersion.Version11,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            // With ResponseHeadersRead the timeout covers the answer's headers only; the streams' bodies are read until disposed.
            Timeout = OpenTimeout,
        };
        http.DefaultRequestHeaders.Add("X-Api-Key", apiKey);
        http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        var streams = new EventStreams(http, cancellationToken);
        try
        {
            using var connecting = new SemaphoreSlim(64);
            var opened = new Task[count];
            for (int i = 0; i < count; i++)
            {
                bool probe = i == 0;
                opened[i] = OpenOneAsync(probe);
            }

            await Task.WhenAll(opened).WaitAsync(OpenTimeout, cancellationToken);
            return streams;

            async Task OpenOneAsync(bool probe)
            {
                await connecting.WaitAsync(cancellationToken);
                HttpResponseMessage? response = null;
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, streamUri);
                    response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, streams._stop.Token);
                    if (response.StatusCode != HttpStatusCode.OK || response.Content.Headers.ContentType?.MediaType != "text/event-stream")
                    {
                        string text = await response.Content.ReadAsStringAsync(cancellationToken);
                        throw new InvalidOperationException(
                            $"GET {streamUri.PathAndQuery}: expected 200 text/event-stream, got {((int)response.StatusCode).ToString(CultureInfo.InvariantCulture)} " +
                            $"{response.Content.Headers.ContentType} {text[..Math.Min(text.Length, 300)]}");
                    }

                    var body = await response.Content.ReadAsStreamAsync(cancellationToken);
                    var owned = response;
                    response = null;
                    lock (streams._readers)
                    {
                        streams._readers.Add(Task.Run(() => probe ? streams.ProbeAsync(owned, body) : streams.CountAsync(owned, body), CancellationToken.None));
                    }
                }
                finally
                {
                    response?.Dispose();
                    connecting.Release();
                }
            }
        }
        catch
        {
            await streams.DisposeAsync();
            throw;
        }
    }

    /// <summary>Reads a stream until it is closed, counting its events without decoding them.</summary>
    private async Task CountAsync(HttpResponseMessage response, Stream body)
    {
        using (response)
        {
            var events = new PatternCounter(EventLine);
            var done = new PatternCounter(DoneLine);
            byte[] buffer = new byte[BufferSize];
            try
            {
                while (true)
                {
                    int read = await body.ReadAsync(buffer, _stop.Token);
                    if (read == 0)
                    {
                        Drop("the server ended the stream");
                        return;
                    }

                    var chunk = buffer.AsSpan(0, read);
                    Interlocked.Add(ref _events, events.Count(chunk));
                    Interlocked.Add(ref _doneEvents, done.Count(chunk));
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException && _stop.IsCancellationRequested)
            {
                // Closed by DisposeAsync.
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException or OperationCanceledException)
            {
                Drop(ex.Message);
            }
        }
    }

    /// <summary>Reads the probe stream line by line and notes the arrival of each operation's <c>done</c> event.</summary>
    private async Task ProbeAsync(HttpResponseMessage response, Stream body)
    {
        using (response)
        {
            using var reader = new StreamReader(body, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, BufferSize);
            bool done = false;
            try
            {
                while (await reader.ReadLineAsync(_stop.Token) is { } line)
                {
                    if (line.StartsWith("event: ", StringComparison.Ordinal))
                    {
                        done = line.Length == 11 && line.EndsWith("done", StringComparison.Ordinal);
                        Interlocked.Increment(ref _events);
                        if (done)
                        {
                            Interlocked.Increment(ref _doneEvents);
                        }
                    }
                    else if (done && line.StartsWith("data: ", StringComparison.Ordinal))
                    {
                        // The operation's id is its first property: data: {"id":"<uuid>",...
                        long arrived = Stopwatch.GetTimestamp();
                        int at = line.IndexOf("\"id\":\"", StringComparison.Ordinal);
                        if (at >= 0 && line.Length >= at + 6 + 36 && Guid.TryParse(line.AsSpan(at + 6, 36), out var id))
                        {
                            _doneArrivals.TryAdd(id, arrived);
                        }

                        done = false;
                    }
                }

                Drop("the server ended the stream");
            }
            catch (Exception ex) when (ex is OperationCanceledException && _stop.IsCancellationRequested)
            {
                // Closed by DisposeAsync.
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException or OperationCanceledException)
            {
                Drop(ex.Message);
            }
        }
    }

    private void Drop(string reason)
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        Interlocked.Increment(ref _dropped);
        if (_dropReasons.Count < 3)
        {
            _dropReasons.Enqueue(reason);
        }
    }

    /// <summary>Closes every stream (the client goes away, as a subscriber that leaves does) and waits for the readers.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync();
        Task[] readers;
        lock (_readers)
        {
            readers = [.. _readers];
        }

        await Task.WhenAll(readers).WaitAsync(TimeSpan.FromSeconds(30), CancellationToken.None).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _http.Dispose();
        _stop.Dispose();
    }

    /// <summary>
    /// Counts the occurrences of a byte pattern in a stream that arrives in chunks, including those that straddle two chunks:
    /// the last <c>pattern.Length - 1</c> bytes seen are kept and searched together with the start of the next chunk.
    /// </summary>
    private sealed class PatternCounter(byte[] pattern)
    {
        private readonly byte[] _tail = new byte[pattern.Length - 1];
        private readonly byte[] _junction = new byte[2 * (pattern.Length - 1)];
        private int _tailLength;

        public long Count(ReadOnlySpan<byte> chunk)
        {
            long found = 0;
            if (_tailLength > 0)
            {
                // Only a match that starts in the tail can be found here: neither the tail nor this prefix can hold one alone.
                int take = Math.Min(chunk.Length, _tail.Length);
                _tail.AsSpan(0, _tailLength).CopyTo(_junction);
                chunk[..take].CopyTo(_junction.AsSpan(_tailLength));
                found += Occurrences(_junction.AsSpan(0, _tailLength + take));
            }

            found += Occurrences(chunk);
            if (chunk.Length >= _tail.Length)
            {
                chunk[^_tail.Length..].CopyTo(_tail);
                _tailLength = _tail.Length;
            }
            else
            {
                // A short chunk: keep the end of the old tail followed by it.
                int keep = Math.Min(_tailLength, _tail.Length - chunk.Length);
                _tail.AsSpan(_tailLength - keep, keep).CopyTo(_junction);
                chunk.CopyTo(_junction.AsSpan(keep));
                _junction.AsSpan(0, keep + chunk.Length).CopyTo(_tail);
                _tailLength = keep + chunk.Length;
            }

            return found;
        }

        private long Occurrences(ReadOnlySpan<byte> text)
        {
            long count = 0;
            int at;
            while ((at = text.IndexOf(pattern)) >= 0)
            {
                count++;
                text = text[(at + pattern.Length)..];
            }

            return count;
        }
    }
}
