using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace PollingApi.Tests.Infrastructure;

/// <summary>A response read completely: status, headers and body, for assertions after the message is gone.</summary>
public sealed class ApiResponse
{
    private ApiResponse(HttpStatusCode status, HttpResponseHeaders headers, HttpContentHeaders contentHeaders, string body)
    {
        Status = status;
        Headers = headers;
        ContentHeaders = contentHeaders;
        Body = body;
    }

    public HttpStatusCode Status { get; }

    public HttpResponseHeaders Headers { get; }

    public HttpContentHeaders ContentHeaders { get; }

    public string Body { get; }

    public string? MediaType => ContentHeaders.ContentType?.MediaType;

    /// <summary>The body parsed as JSON.</summary>
    public JsonElement Json => JsonSerializer.Deserialize<JsonElement>(Body);

    /// <summary>The single value of a response header, or null when it is absent.</summary>
    public string? Header(string name) =>
        Headers.TryGetValues(name, out var values) || ContentHeaders.TryGetValues(name, out values)
            ? string.Join(", ", values)
            : null;

    public static async Task<ApiResponse> ReadAsync(HttpResponseMessage response)
    {
        ArgumentNullException.ThrowIfNull(response);
        string body = await response.Content.ReadAsStringAsync();
        return new ApiResponse(response.StatusCode, response.Headers, response.Content.Headers, body);
    }

    public override string ToString() => $"{(int)Status} {MediaType}: {Body}";
}
