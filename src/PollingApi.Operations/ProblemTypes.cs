namespace PollingApi.Operations;

/// <summary>The stable <c>type</c> URIs of the problems the API and the engine report.</summary>
public static class ProblemTypes
{
    public const string Prefix = "urn:pollingapi:problem:";

    public const string ValidationFailed = Prefix + "validation-failed";
    public const string MalformedJson = Prefix + "malformed-json";
    public const string UnsupportedMediaType = Prefix + "unsupported-media-type";
    public const string PayloadTooLarge = Prefix + "payload-too-large";
    public const string InvalidOperationId = Prefix + "invalid-operation-id";
    public const string OperationNotFound = Prefix + "operation-not-found";
    public const string RouteNotFound = Prefix + "not-found";

    /// <summary>No command of the kind named in an admin route is registered.</summary>
    public const string KindNotFound = Prefix + "kind-not-found";
    public const string MethodNotAllowed = Prefix + "method-not-allowed";
    public const string BadRequest = Prefix + "bad-request";
    public const string DatabaseUnavailable = Prefix + "database-unavailable";

    /// <summary>The connection failed after a write was sent and its commit could not be confirmed: it may or may not have happened.</summary>
    public const string CommitOutcomeUnknown = Prefix + "commit-outcome-unknown";
    public const string IdempotencyKeyReused = Prefix + "idempotency-key-reused";
    public const string InvalidIdempotencyKey = Prefix + "invalid-idempotency-key";
    public const string InvalidPreference = Prefix + "invalid-preference";

    /// <summary>The Operation-Scheduled-At header is not an RFC 3339 instant, or is further ahead than allowed.</summary>
    public const string InvalidScheduledAt = Prefix + "invalid-scheduled-at";

    /// <summary>The Operation-Priority header is not one digit from 0 to 9.</summary>
    public const string InvalidPriority = Prefix + "invalid-priority";
    public const string OperationExpired = Prefix + "operation-expired";
    public const string OperationStateConflict = Prefix + "operation-state-conflict";
    public const string InternalError = Prefix + "internal-error";

    /// <summary>The operation's command does not allow this replay (see <see cref="CommandReplay"/>).</summary>
    public const string ReplayNotAllowed = Prefix + "replay-not-allowed";

    /// <summary>No credentials, or credentials that are not valid.</summary>
    public const string Unauthorized = Prefix + "unauthorized";

    /// <summary>Valid credentials without the scope the request needs.</summary>
    public const string Forbidden = Prefix + "forbidden";

    /// <summary>The caller sent more requests than its rate limit allows.</summary>
    public const string RateLimited = Prefix + "rate-limited";

    /// <summary>The tenant has as many unfinished operations as its quota allows.</summary>
    public const string QuotaExceeded = Prefix + "quota-exceeded";

    /// <summary>A handler threw a permanent failure without naming its own type.</summary>
    public const string HandlerFailed = Prefix + "handler-failed";

    /// <summary>Every attempt failed with a transient error.</summary>
    public const string AttemptsExhausted = Prefix + "attempts-exhausted";

    /// <summary>The last attempt's worker stopped renewing its lease (it crashed or lost the database).</summary>
    public const string LeaseExpired = Prefix + "lease-expired";

    /// <summary>An attempt failed with a transient error (in an operation's attempt history; the operation is retried).</summary>
    public const string AttemptFailed = Prefix + "attempt-failed";

    /// <summary>An attempt ran longer than its kind's attempt timeout and was cancelled; retried while attempts are left.</summary>
    public const string AttemptTimedOut = Prefix + "attempt-timed-out";

    /// <summary>An attempt's node stopped before it finished (in an operation's attempt history; the attempt is not counted).</summary>
    public const string AttemptInterrupted = Prefix + "attempt-interrupted";

    /// <summary>The operation was cancelled through the API.</summary>
    public const string OperationCancelled = Prefix + "operation-cancelled";

    /// <summary>The operation's kind is not registered on the node that claimed it.</summary>
    public const string UnknownKind = Prefix + "unknown-kind";
}
