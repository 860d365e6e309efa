using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace PollingApi.Tests.Infrastructure;

/// <summary>One request a receiver got: its headers, body and when.</summary>
public sealed record ReceivedWebhook(IHeaderDictionary Headers, string Body, DateTimeOffset At)
{
    public string Id => Headers["webhook-id"].ToString();
}

/// <summary>How the receiver answers the next request: a status (with headers), or a dropped connection.</summary>
public sealed record ReceiverAnswer(int Status, string? RetryAfter = null, bool Drop = false, string? Location = null)
{
    public static ReceiverAnswer Ok { get; } = new(200);

    public static ReceiverAnswer DropConnection { get; } = new(0, Drop: true);
}

/// <summary>
/// A real HTTP receiver for webhook deliveries: Kestrel on 127.0.0.1, answering from a script (then 200), recording
/// every request it gets.
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<ReceiverAnswer> _script = new();
    private readonly ConcurrentQueue<ReceivedWebhook> _received = new();

    private WebhookReceiver(WebApplication app) => _app = app;

    public Uri Url { get; private set; } = new("http://127.0.0.1/");

    public IReadOnlyList<ReceivedWebhook> Received => [.. _received];

    public static async Task<WebhookReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel(kestrel => kestrel.Listen(System.Net.IPAddress.Loopback, 0));
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var receiver = new WebhookReceiver(app);
        app.MapPost("/hook", async (HttpContext http) =>
        {
            using var reader = new StreamReader(http.Request.Body);
            string body = await reader.ReadToEndAsync();
            var headers = new HeaderDictionary();
            foreach (var (name, value) in http.Request.Headers)
            {
                headers[name] = value;
            }

            receiver._received.Enqueue(new ReceivedWebhook(headers, body, TimeProvider.System.GetUtcNow()));
            var answer = receiver._script.TryDequeue(out var next) ? next : ReceiverAnswer.Ok;
            if (answer.Drop)
            {
                http.Abort();
                return;
            }

            http.Response.StatusCode = answer.Status;
            if (answer.RetryAfter is not null)
            {
                http.Response.Headers.RetryAfter = answer.RetryAfter;
            }

            if (answer.Location is not null)
            {
                http.Response.Headers.Location = answer.Location;
            }

            await http.Response.WriteAsync("a receiver's own text, never stored");
        });
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        receiver.Url = new Uri(new Uri(address), "/hook");
        return receiver;
    }

    /// <summary>The answers to the next requests, in order; after them, 200.</summary>
    public void Answer(params ReceiverAnswer[] answers)
    {
        foreach (var answer in answers)
        {
            _script.Enqueue(answer);
        }
    }

    /// <summary>Waits (with a deadline) until at least <paramref name="count"/> requests came.</summary>
    public async Task<IReadOnlyList<ReceivedWebhook>> WaitForAsync(int count, TimeSpan? deadline = null)
    {
        await Eventually.WaitUntilAsync(() => Task.FromResult(_received.Count >= count), deadline ?? TimeSpan.FromSeconds(30),
            () => $"{_received.Count} requests received");
        return Received;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
