using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;
using PollingApi.Operations.Lifecycle;
using PollingApi.Operations.Storage;
using PollingApi.Operations.Model;

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
    /// <c>If-None-Match</c> already names the current representation. A pending operation's queue estimate and its
    /// <c>Retry-After</c> are the same estimate. The ETag follows the operation, not the estimate: a 304 says the operation
    /// has not changed, and its fresh <c>Retry-After</c> carries the estimate's news.
    /// </summary>
    public static IResult Respond(HttpContext http, OperationRow row, RetryAfterPolicy retryAfter, OperationQueueEstimator estimator,
        bool withLocation = false)
    {
        var queue = estimator.For(row);
        var headers = http.Response.Headers;
        string etag = ETagOf(row);
        headers.ETag = etag;
        headers.CacheControl = "no-cache";
        bool done = OperationStatus.IsTerminal(row.Status);
        if (!done)
        {
            headers.RetryAfter = retryAfter.SecondsFor(row, queue).ToString(CultureInfo.InvariantCulture);
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

        var resource = OperationResource.From(row, http.Request, queue);
        return done ? TypedResults.Ok(resource) : TypedResults.Accepted((string?)null, resource);
    }

    /// <summary>
    /// <c>503 commit-outcome-unknown</c>: a write on operation <paramref name="id"/> may or may not have been committed.
    /// The answer names the operation (<c>operationId</c>, <c>Location</c>, <c>Operation-Location</c>) so the caller can
    /// look: its status monitor tells what the database holds once it can be reached.
    /// </summary>
    public static ProblemHttpResult CommitOutcomeUnknown(HttpContext http, Guid id, RetryAfterPolicy retryAfter, string detail)
    {
        var headers = http.Response.Headers;
        string self = OperationLinkBuilder.Self(http.Request, id);
        headers.Location = self;
        headers[OperationLocationHeader] = self;
        headers.RetryAfter = retryAfter.SecondsWhenUnavailable().ToString(CultureInfo.InvariantCulture);
        headers.CacheControl = "no-store";
        return TypedResults.Problem(
            detail: detail,
            statusCode: StatusCodes.Status503ServiceUnavailable,
            title: "Whether the change was stored is not known yet.",
            type: ProblemTypes.CommitOutcomeUnknown,
            extensions: new Dictionary<string, object?> { ["operationId"] = id });
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
