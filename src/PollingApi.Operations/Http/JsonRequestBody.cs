using System.Text.Json;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;

namespace PollingApi.Operations.Http;

/// <summary>A request body read as <typeparamref name="T"/>, or the problem to answer instead.</summary>
internal readonly record struct JsonBody<T>(T? Value, ProblemHttpResult? Problem);

/// <summary>
/// Reads a JSON request body by <see cref="OperationJson.Options"/>: exactly the documented camelCase properties, so a
/// typo or a smuggled second value is a <c>malformed-json</c> problem, never silently ignored. Used instead of the
/// framework's binding wherever an ignored property would change what the request does.
/// </summary>
internal static class JsonRequestBody
{
    /// <summary>
    /// The body as a <typeparamref name="T"/>; or a problem: 415 (not JSON), 413 (over <paramref name="limit"/> bytes),
    /// 400 malformed-json (empty, not a JSON object, an unknown property or a wrong type; <paramref name="what"/>, such as
    /// "a filter", says what it should have been) or 400 bad-request (the body could not be read at all).
    /// </summary>
    public static async Task<JsonBody<T>> ReadAsync<T>(HttpContext http, long limit, string what, CancellationToken cancellationToken)
    {
        var read = await ReadBytesAsync(http, limit, what, cancellationToken).ConfigureAwait(false);
        if (read.Problem is not null)
        {
            return new JsonBody<T>(default, read.Problem);
        }

        T? value;
        try
        {
            value = JsonSerializer.Deserialize<T>(read.Value.Span, OperationJson.Options);
        }
        catch (JsonException ex)
        {
            string where = ex.Path is null or "$" ? "" : $" at {ex.Path}";
            string position = ex.LineNumber is { } line ? $" (line {line + 1}, byte {ex.BytePositionInLine + 1})" : "";
            return new JsonBody<T>(default, Problems.MalformedJson($"The body could not be read as {what}{where}{position}: " +
                                                                   "check the JSON syntax, the property names and the value types."));
        }

        return value is null
            ? new JsonBody<T>(default, Problems.MalformedJson("The body must be a JSON object."))
            : new JsonBody<T>(value, null);
    }

    private static ProblemHttpResult UnreadableBody(int status) =>
        Problems.Create(status, ProblemTypes.BadRequest, "The request body could not be read.",
            "The body was cut short, sent too slowly, or its chunked encoding is invalid.");

    private static async Task<JsonBody<ReadOnlyMemory<byte>>> ReadBytesAsync(HttpContext http, long limit, string what,
        CancellationToken cancellationToken)
    {
        var request = http.Request;
        if (!request.HasJsonContentType())
        {
            return new(default, Problems.UnsupportedMediaType(request.ContentType));
        }

        if (request.ContentLength > limit)
        {
            return new(default, Problems.PayloadTooLarge(limit));
        }

        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
        {
            sizeFeature.MaxRequestBodySize = limit;
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[8192];
        try
        {
            int count;
            while ((count = await request.Body.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (buffer.Length + count > limit)
                {
                    return new(default, Problems.PayloadTooLarge(limit));
                }

                buffer.Write(chunk, 0, count);
            }
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return new(default, Problems.PayloadTooLarge(limit));
        }
        catch (BadHttpRequestException ex)
        {
            // The server could not read the body (invalid chunked encoding, sent too slowly, cut short): the client's
            // fault, answered as such, not an unhandled exception.
            return new(default, UnreadableBody(ex.StatusCode));
        }
        catch (ConnectionResetException)
        {
            // The client reset the connection mid-body: nobody is there to answer. Aborting also stops the server from
            // draining a body that is half read.
            http.Abort();
            return new(default, UnreadableBody(StatusCodes.Status400BadRequest));
        }
        catch (IOException)
        {
            // Framing errors found below Kestrel's own checks, such as a chunk size too large to be a number.
            return new(default, UnreadableBody(StatusCodes.Status400BadRequest));
        }

        if (buffer.Length == 0)
        {
            return new(default, Problems.MalformedJson($"The body is empty; send {what} as a JSON object."));
        }

        return new(buffer.ToArray(), null);
    }
}
