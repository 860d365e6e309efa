namespace PollingApi.Operations.Http;

/// <summary>Endpoint metadata describing one response (and the headers it carries) in the OpenAPI document.</summary>
public sealed record ResponseDocumentation(int StatusCode, string Description, params ResponseHeader[] Headers);

/// <summary>A response header as the OpenAPI document describes it.</summary>
public sealed record ResponseHeader(string Name, string Description, string Type, string? Format = null, bool Required = true);

/// <summary>The headers the operations API sends.</summary>
public static class ResponseHeaders
{
    public static readonly ResponseHeader RetryAfter = new("Retry-After",
        "Whole seconds to wait before polling (or retrying) again; at least 1.", "integer", "int32");

    public static readonly ResponseHeader Location = new("Location",
        "The absolute URL of the operation's status monitor.", "string", "uri");

    public static readonly ResponseHeader ETag = new("ETag",
        "A strong validator of the operation's current representation; send it in If-None-Match to get 304 while nothing changed.", "string");

    public static readonly ResponseHeader IdempotentReplayed = new("Idempotent-Replayed",
        "true when the answer is for an earlier request with the same Idempotency-Key (no new operation was created).", "string", Required: false);

    public static readonly ResponseHeader PreferenceApplied = new("Preference-Applied",
        "wait=N when the request was held up to N seconds (Prefer: wait) and the operation finished in time.", "string", Required: false);

    public static readonly ResponseHeader WwwAuthenticate = new("WWW-Authenticate",
        "The ways to authenticate: ApiKey header=\"X-Api-Key\", and Bearer where tokens are accepted.", "string");

    public static readonly ResponseHeader OperationLocation = new("Operation-Location",
        "The absolute URL of the operation's status monitor (the same as Location, for Azure-style pollers).", "string", "uri");
}

/// <summary>Endpoint metadata naming a request header the endpoint reads, for the OpenAPI document.</summary>
internal sealed record RequestHeaderDocumentation(string Name, string Description, int? MaxLength = null);

/// <summary>The request headers the operations API reads.</summary>
internal static class RequestHeaders
{
    public static readonly RequestHeaderDocumentation IdempotencyKey = new("Idempotency-Key",
        "Makes the submit safe to retry: the same key with the same request returns the same operation (Idempotent-Replayed: true); " +
        "with a different request it is 422. 1 to 255 printable ASCII characters; kept as long as the operation.", 255);

    public static readonly RequestHeaderDocumentation Prefer = new("Prefer",
        "RFC 7240. wait=N holds the answer up to N seconds (capped by the server) and answers 200 with the finished operation " +
        "if it is done in time, e.g. 'respond-async, wait=30'.");

    public static readonly RequestHeaderDocumentation ScheduledAt = new("Operation-Scheduled-At",
        "An RFC 3339 instant (e.g. 2026-12-01T08:00:00Z): the operation is stored pending and no worker starts it before then. " +
        "An instant in the past runs now; further ahead than Operations:MaxScheduleAhead (30 days) is a 400.", 64);

    public static readonly RequestHeaderDocumentation Priority = new("Operation-Priority",
        "0 (lowest) to 9 (highest); without it, the kind's priority (5 unless an operator set another). Among due operations " +
        "a higher priority is claimed first, by one minute of waiting per level: an operation that has waited longer than that " +
        "still goes first, so a low priority waits but never starves.", 1);

    public static readonly RequestHeaderDocumentation LastEventId = new("Last-Event-ID",
        "The id of the last event received (what EventSource sends when it reconnects): the stream sends only what is newer.", 40);

    public static readonly RequestHeaderDocumentation IfNoneMatch = new("If-None-Match",
        "The ETag of an earlier answer: 304 Not Modified while the operation is unchanged.");
}
