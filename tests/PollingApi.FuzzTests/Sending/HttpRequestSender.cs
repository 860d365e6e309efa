using System.Diagnostics;
using System.Net;
using System.Text;
using PollingApi.FuzzTests.Generation;

namespace PollingApi.FuzzTests.Sending;

/// <summary>
/// Sends a generated request with <see cref="HttpClient"/> exactly as generated as far as HttpClient allows: the
/// target is not normalised, header values are not validated (non-ASCII is sent as UTF-8), the Host can be forged.
/// </summary>
internal sealed class HttpRequestSender(HttpClient http, Uri baseAddress, TimeSpan timeout)
{
    private const int MaxBodyBytes = 1024 * 1024;

    private static readonly UriCreationOptions Verbatim = new() { DangerousDisablePathAndQueryCanonicalization = true };

    private static readonly HashSet<string> ContentHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Content-Type", "Content-Encoding", "Content-Language", "Content-MD5", "Content-Length", "Content-Range", "Content-Location",
        "Content-Disposition", "Expires", "Last-Modified", "Allow",
    };

    /// <summary>The client the fuzz sends with: no proxy, no redirects, no cookies, no decompression, headers in UTF-8.</summary>
    public static HttpClient CreateClient(int connections) => new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        UseCookies = false,
        AutomaticDecompression = DecompressionMethods.None,
        MaxConnectionsPerServer = connections,
        ConnectTimeout = TimeSpan.FromSeconds(5),
        Expect100ContinueTimeout = TimeSpan.FromSeconds(1),
        RequestHeaderEncodingSelector = (_, _) => Encoding.UTF8,
        ResponseHeaderEncodingSelector = (_, _) => Encoding.UTF8,
    })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    public async Task<FuzzOutcome> SendAsync(FuzzRequest request, CancellationToken cancellationToken)
    {
        HttpRequestMessage message;
        try
        {
            message = Build(request);
        }
        catch (Exception ex) when (ex is FormatException or UriFormatException or InvalidOperationException or ArgumentException)
        {
            return FuzzOutcome.Refused($"{ex.GetType().Name}: {ex.Message}");
        }

        using var _ = message;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        var watch = Stopwatch.StartNew();
        try
        {
            using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
            byte[] body = await ReadAsync(response.Content, deadline.Token);
            string? mediaType;
            try
            {
                mediaType = response.Content.Headers.ContentType?.MediaType;
            }
            catch (FormatException)
            {
                mediaType = response.Content.Headers.TryGetValues("Content-Type", out var raw) ? string.Join(", ", raw) : null;
            }

            return new FuzzOutcome(OutcomeKind.Answered, [new FuzzAnswer((int)response.StatusCode, mediaType, body)], null, watch.Elapsed);
        }
        catch (HttpRequestException ex) when (IsRefusal(ex))
        {
            return FuzzOutcome.Refused($"{ex.HttpRequestError}: {ex.Message}");
        }
        catch (HttpRequestException ex)
        {
            return new FuzzOutcome(OutcomeKind.ClosedWithoutAnswer, [], $"{ex.HttpRequestError}: {Innermost(ex).Message}", watch.Elapsed);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new FuzzOutcome(OutcomeKind.TimedOut, [], $"no answer within {timeout.TotalSeconds:0} s", watch.Elapsed);
        }
    }

    private HttpRequestMessage Build(FuzzRequest request)
    {
        var uri = new Uri($"{baseAddress.GetLeftPart(UriPartial.Authority)}{request.Target}", in Verbatim);
        var message = new HttpRequestMessage(new HttpMethod(request.Method), uri);
        try
        {
            if (request.Body is not null || request.Headers.Any(h => ContentHeaders.Contains(h.Key)))
            {
                message.Content = new ByteArrayContent(request.Body ?? []);
            }

            foreach (var (name, value) in request.Headers)
            {
                bool added = ContentHeaders.Contains(name)
                    ? message.Content!.Headers.TryAddWithoutValidation(name, value)
                    : message.Headers.TryAddWithoutValidation(name, value);
                if (!added)
                {
                    throw new InvalidOperationException($"HttpClient does not take the header {name}.");
                }
            }

            if (request.Host is not null)
            {
                message.Headers.Host = request.Host;
            }

            return message;
        }
        catch
        {
            message.Dispose();
            throw;
        }
    }

    /// <summary>HttpClient's own refusals to write what it was given (not something the server did).</summary>
    private static bool IsRefusal(HttpRequestException ex) =>
        ex.HttpRequestError == HttpRequestError.Unknown && Innermost(ex) is FormatException or ArgumentException or InvalidOperationException;

    private static Exception Innermost(Exception ex)
    {
        while (ex.InnerException is not null)
        {
            ex = ex.InnerException;
        }

        return ex;
    }

    private static async Task<byte[]> ReadAsync(HttpContent content, CancellationToken cancellationToken)
    {
        await using var stream = await content.ReadAsStreamAsync(cancellationToken);
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while (buffer.Length < MaxBodyBytes && (read = await stream.ReadAsync(chunk, cancellationToken)) > 0)
        {
            buffer.Write(chunk, 0, read);
        }

        return buffer.ToArray();
    }
}
