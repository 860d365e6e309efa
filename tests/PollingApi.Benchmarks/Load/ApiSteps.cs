using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace PollingApi.Benchmarks.Load;

/// <summary>
/// The client steps the scenarios repeat, each checking that the answer is what the contract promises
/// (anything else is an error, never a counted request).
/// </summary>
internal sealed class ApiSteps(HttpClient http, Uri baseAddress, int waitSeconds)
{
    /// <summary>The header an API key is sent in.</summary>
    public const string ApiKeyHeader = "X-Api-Key";

    private static readonly byte[] NoOpSleep = "{\"durationMs\":0}"u8.ToArray();
    private static readonly byte[] SucceededStatus = "\"status\":\"succeeded\""u8.ToArray();

    private readonly Uri _sleep = new(baseAddress, "v1/diagnostics/sleep");
    private readonly string _prefer = $"respond-async, wait={waitSeconds.ToString(CultureInfo.InvariantCulture)}";
    private readonly string _waitQuery = $"?wait={waitSeconds.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>One HTTP client, keep-alive HTTP/1.1 connections to loopback, as many as there are clients.</summary>
    public static HttpClient CreateHttpClient(int clients) => new(new SocketsHttpHandler
    {
        MaxConnectionsPerServer = clients + 8,
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
        Timeout = TimeSpan.FromSeconds(90),
    };

    /// <summary>(a): submit a no-op and expect 202 with a Location.</summary>
    public async Task<StepOutcome> SubmitAsync(CancellationToken cancellationToken)
    {
        using var request = SubmitRequest(prefer: false);
        return await SendAsync(request, async response =>
        {
            await response.Content.ReadAsByteArrayAsync(cancellationToken);
            return response.StatusCode == HttpStatusCode.Accepted && response.Headers.Location is not null
                ? StepOutcome.Ok
                : await Unexpected("POST /v1/diagnostics/sleep", "202 with Location", response, cancellationToken);
        }, cancellationToken);
    }

    /// <summary>
    /// (b), (c): submit a no-op and wait for its result, as <paramref name="mode"/> says. <paramref name="submitted"/>, when
    /// given, gets the operation's id (from the answer's Location) as soon as the submit is answered.
    /// </summary>
    public Task<StepOutcome> SubmitAndWaitAsync(WaitMode mode, CancellationToken cancellationToken, Action<Guid>? submitted = null) =>
        mode == WaitMode.Prefer ? SubmitPreferWaitAsync(submitted, cancellationToken) : SubmitThenLongPollAsync(submitted, cancellationToken);

    /// <summary>
    /// (b3): submit a no-op (202), then plain <c>GET {Location}</c> polls until 200, each after the pause the previous
    /// answer's <c>Retry-After</c> asked for, as a generic client does: the first poll at once, later ones honouring it.
    /// What the polls saw goes into <paramref name="stats"/>.
    /// </summary>
    public async Task<StepOutcome> SubmitThenPollAsync(PollStats stats, CancellationToken cancellationToken, TimeSpan? fixedPause = null)
    {
        using var request = SubmitRequest(prefer: false);
        return await SendAsync(request, async response =>
        {
            await response.Content.ReadAsByteArrayAsync(cancellationToken);
            return response.StatusCode == HttpStatusCode.Accepted && response.Headers.Location is { } location
                ? await PollAsync(new Uri(baseAddress, location), stats, fixedPause, cancellationToken)
                : await Unexpected("POST /v1/diagnostics/sleep", "202 with Location", response, cancellationToken);
        }, cancellationToken);
    }

    /// <summary>Polls until 200: after each 202, its <c>Retry-After</c>, or <paramref name="fixedPause"/> when given.</summary>
    private async Task<StepOutcome> PollAsync(Uri location, PollStats stats, TimeSpan? fixedPause, CancellationToken cancellationToken)
    {
        // A no-op finishes in milliseconds: 30 polls honouring Retry-After (3,000 at a fixed pause) without a result is a failure.
        int limit = fixedPause is null ? 30 : 3000;
        for (int poll = 0; poll < limit; poll++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, location);
            TimeSpan? pause = null;
            var outcome = await SendAsync(request, async response =>
            {
                byte[] body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
                if (response.StatusCode == HttpStatusCode.OK && body.AsSpan().IndexOf(SucceededStatus) >= 0)
                {
                    return StepOutcome.Ok;
                }

                if (response.StatusCode != HttpStatusCode.Accepted)
                {
                    return await Unexpected("GET /v1/operations/{id}", "200 succeeded (or 202)", response, cancellationToken, body);
                }

                pause = response.Headers.RetryAfter?.Delta;
                if (pause is null && fixedPause is null)
                {
                    return await Unexpected("GET /v1/operations/{id}", "a 202 with Retry-After in seconds", response, cancellationToken, body);
                }

                pause ??= TimeSpan.Zero;
                return new StepOutcome("still running");
            }, cancellationToken);
            stats.Polled(pause);
            if (outcome.Error != "still running")
            {
                return outcome;
            }

            await Task.Delay(fixedPause ?? pause!.Value, cancellationToken);
        }

        return new StepOutcome($"GET {location}: still not done after {limit} polls");
    }

    /// <summary>(i) long-polls: submit a no-op that nothing claims before <paramref name="at"/> (<c>Operation-Scheduled-At</c>); its id.</summary>
    public async Task<Guid> SubmitScheduledAsync(DateTimeOffset at, CancellationToken cancellationToken)
    {
        using var request = SubmitRequest(prefer: false);
        request.Headers.TryAddWithoutValidation("Operation-Scheduled-At", at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture));
        using var response = await http.SendAsync(request, cancellationToken);
        Guid id = Guid.Empty;
        Report(submitted => id = submitted, response);
        if (response.StatusCode != HttpStatusCode.Accepted || id == Guid.Empty)
        {
            throw new InvalidOperationException((await Unexpected("POST /v1/diagnostics/sleep with Operation-Scheduled-At", "202 with Location",
                response, cancellationToken)).Error);
        }

        return id;
    }

    /// <summary>(d): read a finished operation and expect 200.</summary>
    public async Task<StepOutcome> ReadFinishedAsync(Guid id, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(baseAddress, $"v1/operations/{id:D}"));
        return await SendAsync(request, async response =>
        {
            byte[] body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
            return response.StatusCode == HttpStatusCode.OK && body.AsSpan().IndexOf(SucceededStatus) >= 0
                ? StepOutcome.Ok
                : await Unexpected("GET /v1/operations/{id}", "200 succeeded", response, cancellationToken, body);
        }, cancellationToken);
    }

    /// <summary>One request: <c>Prefer: wait</c> answers 200 with the finished operation; a 202 (the wait ran out) is long-polled.</summary>
    private async Task<StepOutcome> SubmitPreferWaitAsync(Action<Guid>? submitted, CancellationToken cancellationToken)
    {
        using var request = SubmitRequest(prefer: true);
        return await SendAsync(request, async response =>
        {
            Report(submitted, response);
            byte[] body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
            if (response.StatusCode == HttpStatusCode.OK && body.AsSpan().IndexOf(SucceededStatus) >= 0)
            {
                return StepOutcome.Ok;
            }

            if (response.StatusCode == HttpStatusCode.Accepted && response.Headers.Location is { } location)
            {
                var polled = await LongPollAsync(location, cancellationToken);
                return polled with { UsedFallback = true };
            }

            return await Unexpected("POST /v1/diagnostics/sleep with Prefer: wait", "200 succeeded (or 202)", response, cancellationToken, body);
        }, cancellationToken);
    }

    /// <summary>Two requests: submit (202), then <c>GET {Location}?wait=N</c> until 200.</summary>
    private async Task<StepOutcome> SubmitThenLongPollAsync(Action<Guid>? submitted, CancellationToken cancellationToken)
    {
        using var request = SubmitRequest(prefer: false);
        return await SendAsync(request, async response =>
        {
            Report(submitted, response);
            await response.Content.ReadAsByteArrayAsync(cancellationToken);
            return response.StatusCode == HttpStatusCode.Accepted && response.Headers.Location is { } location
                ? await LongPollAsync(location, cancellationToken)
                : await Unexpected("POST /v1/diagnostics/sleep", "202 with Location", response, cancellationToken);
        }, cancellationToken);
    }

    private async Task<StepOutcome> LongPollAsync(Uri location, CancellationToken cancellationToken)
    {
        var poll = new Uri(location + _waitQuery);
        // A no-op finishes in milliseconds; three waits of N seconds each without a result is a failure.
        for (int attempt = 0; attempt < 3; attempt++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, poll);
            var outcome = await SendAsync(request, async response =>
            {
                byte[] body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
                if (response.StatusCode == HttpStatusCode.OK && body.AsSpan().IndexOf(SucceededStatus) >= 0)
                {
                    return StepOutcome.Ok;
                }

                return response.StatusCode == HttpStatusCode.Accepted
                    ? new StepOutcome("still running")
                    : await Unexpected("GET /v1/operations/{id}?wait=N", "200 succeeded (or 202)", response, cancellationToken, body);
            }, cancellationToken);
            if (outcome.Error != "still running")
            {
                return outcome;
            }
        }

        return new StepOutcome($"GET {location}{_waitQuery}: still not done after 3 waits of {waitSeconds} s");
    }

    /// <summary>
    /// (j): subscribes <paramref name="url"/> to the ends of the tenant's operations (<c>POST /v1/webhooks</c>, expect 201);
    /// returns the subscription's id.
    /// </summary>
    public async Task<Guid> SubscribeWebhookAsync(Uri url, string eventType, CancellationToken cancellationToken)
    {
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["url"] = url.ToString(),
            ["events"] = new[] { eventType },
        });
        var content = new ByteArrayContent(json);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(baseAddress, "v1/webhooks")) { Content = content };
        using var response = await http.SendAsync(request, cancellationToken);
        byte[] body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        if (response.StatusCode != HttpStatusCode.Created)
        {
            throw new InvalidOperationException((await Unexpected("POST /v1/webhooks", "201", response, cancellationToken, body)).Error);
        }

        using var created = JsonDocument.Parse(body);
        return created.RootElement.GetProperty("id").GetGuid();
    }

    /// <summary>(j): deletes the subscription again (expect 204), so that nothing after (j) pays for deliveries.</summary>
    public async Task DeleteWebhookAsync(Guid id, CancellationToken cancellationToken)
    {
        using var response = await http.DeleteAsync(new Uri(baseAddress, $"v1/webhooks/{id:D}"), cancellationToken);
        if (response.StatusCode != HttpStatusCode.NoContent)
        {
            throw new InvalidOperationException((await Unexpected("DELETE /v1/webhooks/{id}", "204", response, cancellationToken)).Error);
        }
    }

    /// <summary>
    /// (k): replaces a kind's settings (<c>PUT /v1/admin/kinds/{kind}</c>, expect 200) as an operator does, with a key of
    /// the admin scope instead of the load's key. A setting not given is sent as absent, which is its default: not
    /// paused, no cap.
    /// </summary>
    public async Task PutKindSettingsAsync(string kind, string adminKey, bool paused, int? maxConcurrency, CancellationToken cancellationToken)
    {
        var settings = new Dictionary<string, object>();
        if (paused)
        {
            settings["paused"] = true;
        }

        if (maxConcurrency is { } cap)
        {
            settings["maxConcurrency"] = cap;
        }

        var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(settings));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Put, new Uri(baseAddress, $"v1/admin/kinds/{Uri.EscapeDataString(kind)}"))
        {
            Content = content,
        };
        // A header set on the request is sent instead of the client's default one of the same name.
        request.Headers.Add(ApiKeyHeader, adminKey);
        using var response = await http.SendAsync(request, cancellationToken);
        byte[] body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException((await Unexpected("PUT /v1/admin/kinds/{kind}", "200", response, cancellationToken, body)).Error);
        }
    }

    /// <summary>
    /// The value of a gauge on <c>/metrics</c> (Prometheus text format), summed over its series; NaN when it is not there or
    /// <c>/metrics</c> does not answer 200.
    /// </summary>
    public async Task<double> ReadMetricAsync(string name, CancellationToken cancellationToken)
    {
        using var response = await http.GetAsync(new Uri(baseAddress, "metrics"), cancellationToken);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            return double.NaN;
        }

        double sum = double.NaN;
        foreach (string line in (await response.Content.ReadAsStringAsync(cancellationToken)).Split('\n'))
        {
            if (line.Length > name.Length && line.StartsWith(name, StringComparison.Ordinal) && line[name.Length] is ' ' or '{')
            {
                // name{labels} value [timestamp]
                int valueAt = line[name.Length] == '{' ? line.LastIndexOf('}') + 1 : name.Length;
                string[] parts = line[valueAt..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length > 0 && double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double value))
                {
                    sum = double.IsNaN(sum) ? value : sum + value;
                }
            }
        }

        return sum;
    }

    /// <summary>Hands the id in a submit's Location (…/v1/operations/{id}) to <paramref name="submitted"/>.</summary>
    private static void Report(Action<Guid>? submitted, HttpResponseMessage response)
    {
        if (submitted is not null && response.Headers.Location is { } location)
        {
            string path = location.IsAbsoluteUri ? location.AbsolutePath : location.OriginalString;
            if (Guid.TryParse(path.AsSpan(path.LastIndexOf('/') + 1), out var id))
            {
                submitted(id);
            }
        }
    }

    private HttpRequestMessage SubmitRequest(bool prefer)
    {
        var content = new ByteArrayContent(NoOpSleep);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var request = new HttpRequestMessage(HttpMethod.Post, _sleep) { Content = content };
        if (prefer)
        {
            request.Headers.TryAddWithoutValidation("Prefer", _prefer);
        }

        return request;
    }

    /// <summary>Sends a request; a transport failure or a timeout is an error outcome, a cancelled run is not.</summary>
    private async Task<StepOutcome> SendAsync(HttpRequestMessage request, Func<HttpResponseMessage, Task<StepOutcome>> check,
        CancellationToken cancellationToken)
    {
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            return await check(response);
        }
        catch (HttpRequestException ex)
        {
            return new StepOutcome($"{request.Method} {request.RequestUri?.AbsolutePath}: transport error {ex.Message}");
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new StepOutcome($"{request.Method} {request.RequestUri?.AbsolutePath}: no answer within {http.Timeout.TotalSeconds:0} s");
        }
    }

    private static async Task<StepOutcome> Unexpected(string what, string expected, HttpResponseMessage response, CancellationToken cancellationToken,
        byte[]? body = null)
    {
        body ??= await response.Content.ReadAsByteArrayAsync(cancellationToken);
        string text = Encoding.UTF8.GetString(body, 0, Math.Min(body.Length, 300));
        return new StepOutcome($"{what}: expected {expected}, got {((int)response.StatusCode).ToString(CultureInfo.InvariantCulture)} {text}");
    }
}

/// <summary>(b3): what the plain polls saw, over all clients.</summary>
internal sealed class PollStats
{
    private long _polls;
    private long _pending;
    private long _maxRetryAfterTicks;

    /// <summary>Polls sent.</summary>
    public long Polls => Interlocked.Read(ref _polls);

    /// <summary>Polls answered 202 (the operation not done yet).</summary>
    public long Pending => Interlocked.Read(ref _pending);

    /// <summary>The longest <c>Retry-After</c> a 202 asked for.</summary>
    public TimeSpan MaxRetryAfter => TimeSpan.FromTicks(Interlocked.Read(ref _maxRetryAfterTicks));

    /// <summary>Counts a poll; <paramref name="retryAfter"/> is the pause its 202 asked for, null for a final answer.</summary>
    public void Polled(TimeSpan? retryAfter)
    {
        Interlocked.Increment(ref _polls);
        if (retryAfter is not { } pause)
        {
            return;
        }

        Interlocked.Increment(ref _pending);
        long seen;
        do
        {
            seen = Interlocked.Read(ref _maxRetryAfterTicks);
        }
        while (pause.Ticks > seen && Interlocked.CompareExchange(ref _maxRetryAfterTicks, pause.Ticks, seen) != seen);
    }
}
