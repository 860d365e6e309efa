using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace PollingApi.FaultTests.Infrastructure;

/// <summary>One HTTP answer as the invariants need it, or the transport error that took its place.</summary>
internal sealed record ApiAnswer(
    int Status,
    string Body,
    string? ContentType,
    string? RetryAfter,
    bool Replayed,
    string? TransportError,
    TimeSpan StartedAt,
    TimeSpan EndedAt,
    string? Location = null)
{
    public bool IsTransportError => TransportError is not null;

    /// <summary>Whether the answer is what an unreachable database must produce: 503, Retry-After, a problem+json body.</summary>
    public bool IsWellFormedUnavailable =>
        Status == 503
        && int.TryParse(RetryAfter, NumberStyles.None, CultureInfo.InvariantCulture, out int seconds) && seconds >= 1
        && string.Equals(ContentType, "application/problem+json", StringComparison.OrdinalIgnoreCase)
        && ProblemType is not null;

    /// <summary>The <c>type</c> of a problem body; null when the body is not a JSON object with one.</summary>
    public string? ProblemType => TryReadString("type");

    public Guid? OperationId => TryReadString("id") is { } id && Guid.TryParse(id, out var guid) ? guid : null;

    /// <summary>The <c>status</c> of an Operation body (<c>pending</c>, <c>running</c>, ...); null for anything else.</summary>
    public string? OperationStatus => TryReadString("status");

    /// <summary>The operation a <c>commit-outcome-unknown</c> problem names.</summary>
    public Guid? ProblemOperationId => TryReadString("operationId") is { } id && Guid.TryParse(id, out var guid) ? guid : null;

    public string Describe() => IsTransportError
        ? $"transport error {TransportError}"
        : $"{Status} {ContentType} Retry-After={RetryAfter ?? "-"} {Truncate(Body, 300)}";

    private string? TryReadString(string property)
    {
        if (Body.Length == 0 || Body[0] != '{')
        {
            return null;
        }

        try
        {
            using var json = JsonDocument.Parse(Body);
            return json.RootElement.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String
                ? value.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string Truncate(string text, int length) => text.Length <= length ? text : text[..length] + "...";
}

/// <summary>The outcome of a submit that is retried while the answer is 503 or a transport error.</summary>
internal sealed record SubmitOutcome(ApiAnswer Final, int UnavailableAnswers, int TransportErrors)
{
    public bool Accepted => Final.Status == 202;
}

/// <summary>Sends the harness's requests to a node, always to 127.0.0.1, timing each against the scenario's clock.</summary>
internal sealed class ApiClient(HttpClient http, Uri baseAddress, string apiKey, Stopwatch clock)
{
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(200);
    private static readonly Dictionary<string, string> NoHeaders = [];

    public Uri BaseAddress { get; } = baseAddress;

    public static HttpClient CreateHttpClient() => new(new SocketsHttpHandler
    {
        MaxConnectionsPerServer = 256,
        ConnectTimeout = TimeSpan.FromSeconds(5),
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        UseProxy = false,
    })
    {
        Timeout = TimeSpan.FromSeconds(30),
    };

    public Task<ApiAnswer> GetAsync(string path, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Get, path, null, null, cancellationToken);

    public Task<ApiAnswer> PostAsync(string path, string json, string? idempotencyKey, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Post, path, json, idempotencyKey, cancellationToken);

    /// <summary>A POST with more request headers (<c>Operation-Scheduled-At</c>, say).</summary>
    public Task<ApiAnswer> PostAsync(string path, string json, string? idempotencyKey, IReadOnlyDictionary<string, string> headers,
        CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Post, path, json, idempotencyKey, headers, cancellationToken);

    /// <summary>
    /// Submits a command, retrying with the same idempotency key while the answer is 503 or the connection fails
    /// (neither means the command was stored), at most <paramref name="maxTries"/> times.
    /// </summary>
    public Task<SubmitOutcome> SubmitAsync(string path, string json, string idempotencyKey, int maxTries,
        CancellationToken cancellationToken) =>
        SubmitAsync(path, json, idempotencyKey, NoHeaders, maxTries, cancellationToken);

    /// <summary>A submit as above, with more request headers sent on every try.</summary>
    public async Task<SubmitOutcome> SubmitAsync(string path, string json, string idempotencyKey, IReadOnlyDictionary<string, string> headers,
        int maxTries, CancellationToken cancellationToken)
    {
        int unavailable = 0;
        int transportErrors = 0;
        while (true)
        {
            var answer = await PostAsync(path, json, idempotencyKey, headers, cancellationToken);
            bool retryable = answer.IsTransportError || answer.Status == 503;
            if (!retryable || unavailable + transportErrors + 1 >= maxTries)
            {
                return new SubmitOutcome(answer, unavailable, transportErrors);
            }

            if (answer.IsTransportError)
            {
                transportErrors++;
            }
            else
            {
                unavailable++;
            }

            await Task.Delay(RetryDelay, cancellationToken);
        }
    }

    public Task<ApiAnswer> SendAsync(HttpMethod method, string path, string? json, string? idempotencyKey,
        CancellationToken cancellationToken) =>
        SendAsync(method, path, json, idempotencyKey, NoHeaders, cancellationToken);

    public async Task<ApiAnswer> SendAsync(HttpMethod method, string path, string? json, string? idempotencyKey,
        IReadOnlyDictionary<string, string> headers, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, new Uri(BaseAddress, path));
        request.Headers.Add("X-Api-Key", apiKey);
        if (json is not null)
        {
            request.Content = new StringContent(json, Encoding.UTF8, new MediaTypeHeaderValue("application/json"));
        }

        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }

        foreach (var (name, value) in headers)
        {
            request.Headers.Add(name, value);
        }

        var startedAt = clock.Elapsed;
        try
        {
            using var response = await http.SendAsync(request, cancellationToken);
            string body = await response.Content.ReadAsStringAsync(cancellationToken);
            string? retryAfter = response.Headers.TryGetValues("Retry-After", out var values) ? values.FirstOrDefault() : null;
            bool replayed = response.Headers.TryGetValues("Idempotent-Replayed", out var replay) && replay.Contains("true");
            return new ApiAnswer((int)response.StatusCode, body, response.Content.Headers.ContentType?.MediaType, retryAfter, replayed,
                null, startedAt, clock.Elapsed, response.Headers.Location?.ToString());
        }
        catch (HttpRequestException ex)
        {
            return new ApiAnswer(0, "", null, null, false, $"{ex.HttpRequestError}: {ex.Message}", startedAt, clock.Elapsed);
        }
        catch (TaskCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            return new ApiAnswer(0, "", null, null, false, $"timeout: {ex.Message}", startedAt, clock.Elapsed);
        }
    }

    public static bool IsOk(ApiAnswer answer) => answer.Status == (int)HttpStatusCode.OK;
}
