using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace PollingApi.FaultTests.Infrastructure;

/// <summary>How the receiver answered one request.</summary>
internal enum ReceiverAnswer
{
    /// <summary>200: accepted.</summary>
    Ok,

    /// <summary>500: the sender must try again later.</summary>
    ServerError,

    /// <summary>No answer: the connection was aborted once the request was read.</summary>
    Dropped,
}

/// <summary>One request the receiver got, as it came (the raw body, for the signature), with its place in arrival order.</summary>
internal sealed record ReceivedRequest(
    long Sequence,
    string WebhookId,
    string Timestamp,
    string Signature,
    byte[] Body,
    ReceiverAnswer Answer,
    DateTimeOffset ReceivedAt);

/// <summary>
/// A webhook receiver inside the harness: Kestrel on 127.0.0.1 (a free port), recording every request it gets before it
/// answers. The first request of a webhook-id is refused (500, or a dropped connection) with the given chances, so the
/// senders' retries are exercised; every later request of that id is answered 200.
/// </summary>
internal sealed class WebhookReceiver : IAsyncDisposable
{
    /// <summary>Standard Webhooks: a receiver rejects a timestamp further than this from its own clock.</summary>
    public static readonly TimeSpan TimestampTolerance = TimeSpan.FromMinutes(5);

    private const string Route = "/hooks";

    private readonly WebApplication _app;
    private readonly ConcurrentQueue<ReceivedRequest> _received = new();
    private readonly ConcurrentDictionary<string, byte> _seen = new(StringComparer.Ordinal);
    private readonly Random _random;
    private readonly Lock _randomLock = new();
    private readonly double _serverErrorChance;
    private readonly double _dropChance;
    private long _sequence;

    private WebhookReceiver(WebApplication app, int seed, double serverErrorChance, double dropChance)
    {
        _app = app;
        _random = new Random(seed);
        _serverErrorChance = serverErrorChance;
        _dropChance = dropChance;
    }

    /// <summary>Where the nodes POST the deliveries.</summary>
    public Uri Url { get; private set; } = new("http://127.0.0.1/");

    public int Count => _received.Count;

    /// <summary>Every request so far, in arrival order.</summary>
    public IReadOnlyList<ReceivedRequest> Received => [.. _received.OrderBy(r => r.Sequence)];

    public static async Task<WebhookReceiver> StartAsync(int seed, double serverErrorChance, double dropChance, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var receiver = new WebhookReceiver(app, seed, serverErrorChance, dropChance);
        app.MapPost(Route, receiver.ReceiveAsync);
        await app.StartAsync(cancellationToken);
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        receiver.Url = new Uri(new Uri(address), Route);
        return receiver;
    }

    /// <summary>
    /// Whether <paramref name="request"/> carries a valid Standard Webhooks signature for <paramref name="secret"/>: one of
    /// the space-separated <c>v1,</c> signatures is the base64 HMAC-SHA256, keyed with the base64-decoded part of the
    /// secret after <c>whsec_</c>, of <c>{webhook-id}.{webhook-timestamp}.{body}</c>.
    /// </summary>
    public static bool SignatureIsValid(ReceivedRequest request, string secret)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(secret);
        const string Prefix = "whsec_";
        byte[] key = Convert.FromBase64String(secret.StartsWith(Prefix, StringComparison.Ordinal) ? secret[Prefix.Length..] : secret);
        byte[] signedContent = [.. Encoding.UTF8.GetBytes($"{request.WebhookId}.{request.Timestamp}."), .. request.Body];
        byte[] expected = HMACSHA256.HashData(key, signedContent);
        foreach (string candidate in request.Signature.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (candidate.StartsWith("v1,", StringComparison.Ordinal) && TryDecodeBase64(candidate[3..], out byte[] signature)
                && CryptographicOperations.FixedTimeEquals(signature, expected))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Whether the request's <c>webhook-timestamp</c> is whole Unix seconds within the tolerance of when it came.</summary>
    public static bool TimestampIsFresh(ReceivedRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return long.TryParse(request.Timestamp, NumberStyles.None, CultureInfo.InvariantCulture, out long seconds)
               && (request.ReceivedAt - DateTimeOffset.FromUnixTimeSeconds(seconds)).Duration() <= TimestampTolerance;
    }

    private async Task ReceiveAsync(HttpContext http)
    {
        byte[] body;
        using (var buffer = new MemoryStream())
        {
            await http.Request.Body.CopyToAsync(buffer, http.RequestAborted);
            body = buffer.ToArray();
        }

        var headers = http.Request.Headers;
        string webhookId = headers["webhook-id"].ToString();
        var answer = _seen.TryAdd(webhookId, 0) ? FirstAnswer() : ReceiverAnswer.Ok;
        _received.Enqueue(new ReceivedRequest(Interlocked.Increment(ref _sequence), webhookId, headers["webhook-timestamp"].ToString(),
            headers["webhook-signature"].ToString(), body, answer, TimeProvider.System.GetUtcNow()));
        switch (answer)
        {
            case ReceiverAnswer.Dropped:
                http.Abort();
                break;
            case ReceiverAnswer.ServerError:
                http.Response.StatusCode = StatusCodes.Status500InternalServerError;
                break;
            default:
                http.Response.StatusCode = StatusCodes.Status200OK;
                break;
        }
    }

    private ReceiverAnswer FirstAnswer()
    {
        double draw;
        lock (_randomLock)
        {
            draw = _random.NextDouble();
        }

        return draw < _serverErrorChance ? ReceiverAnswer.ServerError
            : draw < _serverErrorChance + _dropChance ? ReceiverAnswer.Dropped
            : ReceiverAnswer.Ok;
    }

    private static bool TryDecodeBase64(string text, out byte[] bytes)
    {
        bytes = new byte[((text.Length + 3) / 4) * 3];
        if (Convert.TryFromBase64String(text, bytes, out int written))
        {
            bytes = bytes[..written];
            return true;
        }

        return false;
    }

    public async ValueTask DisposeAsync()
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(stop.Token);
        await _app.DisposeAsync();
    }
}
