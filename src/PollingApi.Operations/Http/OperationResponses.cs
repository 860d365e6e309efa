using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Http;

/// <summary>How an operation is answered: 200 when done, 202 + <c>Retry-After</c> when not, with a strong ETag and 304s.</summary>
internal static class OperationResponses
{
    public const string IdempotentReplayedHeader = "Idempotent-Replayed";
    public const string PreferenceAppliedHeader = "Preference-Applied";
    public const string OperationLocationHeader = "Operation-Location";

    /// <summary>The strong ETag of an operation's current representation: it changes whenever anything a poller sees changes.</summary>
    public static string ETagOf(OperationRow row) => $"\"{row.Id:N}.{row.Version.ToString(CultureInfo.InvariantCulture)}\"";

    /// <summary>
    /// Answers with the operation: 200 when it is terminal, else 202 with <c>Retry-After</c>; 304 when the caller's
    /// <c>If-None-Match</c> already names the current representation.
    /// </summary>
    public static IResult Respond(HttpContext http, OperationRow row, RetryAfterPolicy retryAfter, bool withLocation = false)
    {
        var headers = http.Response.Headers;
        string etag = ETagOf(row);
        headers.ETag = etag;
        headers.CacheControl = "no-cache";
        bool done = OperationStatus.IsTerminal(row.Status);
        if (!done)
        {
            headers.RetryAfter = retryAfter.SecondsFor(row).ToString(CultureInfo.InvariantCulture);
        }

        string self = OperationLinkBuilder.Self(http.Request, row.Id);
        if (withLocation)
        {
            headers.Location = self;
            headers[OperationLocationHeader] = self;
        }

        if (Matches(http.Request.Headers.IfNoneMatch, etag))
        {
            return TypedResults.StatusCode(StatusCodes.Status304NotModified);
        }

        var resource = OperationResource.From(row, http.Request);
        return done ? TypedResults.Ok(resource) : TypedResults.Accepted((string?)null, resource);
    }

    public static bool Matches(StringValues ifNoneMatch, string etag)
    {
        if (StringValues.IsNullOrEmpty(ifNoneMatch))
        {
            return false;
        }

        if (!EntityTagHeaderValue.TryParseList(ifNoneMatch, out var tags))
        {
            return false;
        }

        var current = new EntityTagHeaderValue(etag);
        // If-None-Match uses the weak comparison (RFC 9110 13.1.2).
        return tags.Any(tag => tag.Equals(EntityTagHeaderValue.Any) || tag.Compare(current, useStrongComparison: false));
    }
}
