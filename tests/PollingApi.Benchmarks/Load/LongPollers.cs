using System.Collections.Concurrent;
using System.Net;

namespace PollingApi.Benchmarks.Load;

/// <summary>
/// Many long-polls held open at once (scenario (i) long-polls): one per operation, each on its own keep-alive HTTP/1.1
/// connection, <c>GET /v1/operations/{id}?wait=N</c> again whenever the wait runs out (202), until the 200 arrives, whose
/// wall-clock arrival time is noted. Started at most 200 connections at a time, so that the node's accept queue is never
/// the limit.
/// </summary>
internal sealed class LongPollers : IAsyncDisposable
{
    private const int OpeningAtOnce = 200;

    private readonly HttpClient _http;
    private readonly CancellationTokenSource _stop;
    private readonly List<Task> _polls = [];
    private readonly ConcurrentDictionary<Guid, DateTimeOffset> _arrivals = new();
    private readonly ConcurrentQueue<string> _errors = new();
    private long _repolls;
    private int _disposed;

    private LongPollers(HttpClient http, CancellationToken cancellationToken)
    {
        _http = http;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
    }

    /// <summary>Operation id → when its 200 arrived (this machine's clock, which the database server shares).</summary>
    public IReadOnlyDictionary<Guid, DateTimeOffset> Arrivals => _arrivals;

    /// <summary>Long-polls whose wait ran out (202) and were sent again.</summary>
    public long Repolls => Interlocked.Read(ref _repolls);

    /// <summary>Answers other than 200 or 202, and transport errors.</summary>
    public IReadOnlyList<string> Errors => [.. _errors.Take(5)];

    public int ErrorCount => _errors.Count;

    /// <summary>Starts one long-poll per id; returns once every request has been handed to a connection of its own.</summary>
    public static async Task<LongPollers> StartAsync(Uri baseAddress, string apiKeyHeader, string apiKey, IReadOnlyList<Guid> ids, int waitSeconds,
        CancellationToken cancellationToken)
    {
        var http = new HttpClient(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = ids.Count + 16,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromSeconds(30),
        })
        {
            DefaultRequestVersion = HttpVersion.Version11,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Timeout = TimeSpan.FromSeconds(waitSeconds + 60),
        };
        http.DefaultRequestHeaders.Add(apiKeyHeader, apiKey);
        var pollers = new LongPollers(http, cancellationToken);
        using var opening = new SemaphoreSlim(OpeningAtOnce);
        foreach (var id in ids)
        {
            await opening.WaitAsync(cancellationToken);
            var sent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            pollers._polls.Add(pollers.PollAsync(new Uri(baseAddress, $"v1/operations/{id:D}?wait={waitSeconds}"), id, sent));
            _ = sent.Task.ContinueWith(_ => opening.Release(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        // Every poll has its connection (the last ones may still be in flight to the node).
        for (int i = 0; i < OpeningAtOnce; i++)
        {
            await opening.WaitAsync(cancellationToken);
        }

        return pollers;
    }

    /// <summary>Waits until every long-poll has had its 200 (or failed), at most <paramref name="timeout"/>; false when some are still open.</summary>
    public async Task<bool> WaitForAllAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var all = Task.WhenAll(_polls);
        return await Task.WhenAny(all, Task.Delay(timeout, cancellationToken)) == all;
    }

    private async Task PollAsync(Uri uri, Guid id, TaskCompletionSource sent)
    {
        var token = _stop.Token;
        try
        {
            while (!token.IsCancellationRequested)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, uri);
                // The connection is up and the request written once the headers are being awaited; the next may open.
                var answer = _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, token);
                _ = Task.Delay(TimeSpan.FromMilliseconds(50), token).ContinueWith(_ => sent.TrySetResult(), TaskScheduler.Default);
                using var response = await answer;
                sent.TrySetResult();
                await response.Content.ReadAsByteArrayAsync(token);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    _arrivals[id] = TimeProvider.System.GetUtcNow();
                    return;
                }

                if (response.StatusCode != HttpStatusCode.Accepted)
                {
                    _errors.Enqueue($"GET {uri.PathAndQuery}: {(int)response.StatusCode}");
                    return;
                }

                Interlocked.Increment(ref _repolls);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            _errors.Enqueue($"GET {uri.PathAndQuery}: {ex.Message}");
        }
        finally
        {
            sent.TrySetResult();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync();
        try
        {
            await Task.WhenAll(_polls);
        }
        catch (OperationCanceledException)
        {
        }

        _http.Dispose();
        _stop.Dispose();
    }
}
