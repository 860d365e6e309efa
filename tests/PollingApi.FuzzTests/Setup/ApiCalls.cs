using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace PollingApi.FuzzTests.Setup;

/// <summary>An answer to one of the suite's own well-formed requests.</summary>
internal sealed record ApiReply(int Status, string Body, Uri? Location)
{
    /// <summary>A string member of the JSON body (a dotted path such as "result.accountId"); null when it is not there.</summary>
    public string? Member(string path)
    {
        try
        {
            using var json = JsonDocument.Parse(Body);
            var element = json.RootElement;
            foreach (string name in path.Split('.'))
            {
                if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(name, out element))
                {
                    return null;
                }
            }

            return element.ValueKind == JsonValueKind.String ? element.GetString() : element.GetRawText();
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public override string ToString() => $"{Status} {(Body.Length > 500 ? Body[..500] + "..." : Body)}";
}

/// <summary>
/// The suite's own well-formed requests (setting up, and checking the normal flow afterwards), always to 127.0.0.1,
/// with a tenant's key when one is given.
/// </summary>
internal sealed class ApiCalls(HttpClient http, Uri baseAddress)
{
    public const string ApiKeyHeader = "X-Api-Key";

    public Uri BaseAddress { get; } = baseAddress;

    public static HttpClient CreateClient() => new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, ConnectTimeout = TimeSpan.FromSeconds(5) })
    {
        Timeout = TimeSpan.FromSeconds(30),
    };

    public async Task<ApiReply> SendAsync(HttpMethod method, Uri uri, string? key, string? json, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, uri);
        if (key is not null)
        {
            request.Headers.Add(ApiKeyHeader, key);
        }

        if (json is not null)
        {
            request.Content = new StringContent(json, Encoding.UTF8, new MediaTypeHeaderValue("application/json"));
        }

        using var response = await http.SendAsync(request, cancellationToken);
        string body = await response.Content.ReadAsStringAsync(cancellationToken);
        return new ApiReply((int)response.StatusCode, body, response.Headers.Location);
    }

    public Task<ApiReply> SubmitAsync(string path, string json, string? key, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Post, new Uri(BaseAddress, path), key, json, cancellationToken);

    /// <summary>
    /// Polls <paramref name="location"/> until the operation is done (200) or <paramref name="deadline"/> passes; returns
    /// the last answer either way. Polls every 50 ms: a wait on a condition, not a sleep standing in for one.
    /// </summary>
    public async Task<ApiReply> PollUntilDoneAsync(Uri location, string? key, TimeSpan deadline, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var reply = await SendAsync(HttpMethod.Get, location, key, null, cancellationToken);
            if (reply.Status != 202 || watch.Elapsed > deadline)
            {
                return reply;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), cancellationToken);
        }
    }
}
