using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace PollingApi.Benchmarks.Load;

/// <summary>
/// The webhook receiver of scenario (j), inside the driver: Kestrel on 127.0.0.1 and a free port, answering every
/// <c>POST /hook</c> with 200 and an empty body, as a receiver that queues the event for later would. It counts the
/// requests and the distinct deliveries (by <c>webhook-id</c>: a retried delivery keeps its id) and notes when the first
/// and the latest distinct delivery arrived. The body is left to Kestrel, which drains it.
/// </summary>
internal sealed class DeliveryReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, byte> _ids = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _requests;
    private long _unsigned;
    private long _first;
    private long _last;
    private int _expected = int.MaxValue;

    private DeliveryReceiver(WebApplication app) => _app = app;

    public Uri Url { get; private set; } = new("http://127.0.0.1/hook");

    /// <summary>Every request, repeated deliveries and requests without a webhook-id included.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Requests without the Standard Webhooks headers (webhook-id, webhook-signature).</summary>
    public long Unsigned => Interlocked.Read(ref _unsigned);

    /// <summary>Distinct deliveries (distinct webhook-id values).</summary>
    public int Deliveries => _ids.Count;

    /// <summary>Stopwatch timestamps of the first and the latest distinct delivery; 0 before any.</summary>
    public (long First, long Last) Arrivals => (Interlocked.Read(ref _first), Interlocked.Read(ref _last));

    public static async Task<DeliveryReceiver> StartAsync(CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var receiver = new DeliveryReceiver(app);
        app.Run(http =>
        {
            receiver.Record(http.Request);
            http.Response.StatusCode = http.Request.Method == HttpMethods.Post && http.Request.Path == "/hook"
                ? StatusCodes.Status200OK
                : StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        });
        await app.StartAsync(cancellationToken);
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        receiver.Url = new Uri(new Uri(address), "/hook");
        return receiver;
    }

    /// <summary>
    /// Waits until <paramref name="count"/> distinct deliveries have arrived; false when they have not after
    /// <paramref name="timeout"/>.
    /// </summary>
    public async Task<bool> WaitForAsync(int count, TimeSpan timeout, CancellationToken cancellationToken)
    {
        Volatile.Write(ref _expected, count);
        if (_ids.Count >= count)
        {
            _reached.TrySetResult();
        }

        try
        {
            await _reached.Task.WaitAsync(timeout, cancellationToken);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private void Record(HttpRequest request)
    {
        long now = Stopwatch.GetTimestamp();
        Interlocked.Increment(ref _requests);
        string id = request.Headers["webhook-id"].ToString();
        if (id.Length == 0 || request.Headers["webhook-signature"].Count == 0)
        {
            Interlocked.Increment(ref _unsigned);
            return;
        }

        if (_ids.TryAdd(id, 0))
        {
            Interlocked.CompareExchange(ref _first, now, 0);
            // The latest arrival, whatever order the threads record them in.
            long last = Interlocked.Read(ref _last);
            while (now > last)
            {
                long seen = Interlocked.CompareExchange(ref _last, now, last);
                if (seen == last)
                {
                    break;
                }

                last = seen;
            }

            if (_ids.Count >= Volatile.Read(ref _expected))
            {
                _reached.TrySetResult();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync(CancellationToken.None);
        await _app.DisposeAsync();
    }
}
