using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Http;

/// <summary>The problem+json answers of the operations API, each with a stable <c>type</c>.</summary>
internal static class Problems
{
    public static ProblemHttpResult Create(int status, string type, string title, string? detail = null) =>
        TypedResults.Problem(detail: detail, statusCode: status, title: title, type: type);

    public static ProblemHttpResult MalformedJson(string detail) =>
        Create(StatusCodes.Status400BadRequest, ProblemTypes.MalformedJson, "The request body is not valid JSON.", detail);

    public static ProblemHttpResult UnsupportedMediaType(string? contentType) =>
        Create(StatusCodes.Status415UnsupportedMediaType, ProblemTypes.UnsupportedMediaType, "The request body must be JSON.",
            $"Send the body as application/json; the request's Content-Type was '{Truncate(contentType ?? "(none)")}'.");

    public static ProblemHttpResult PayloadTooLarge(long limit) =>
        Create(StatusCodes.Status413PayloadTooLarge, ProblemTypes.PayloadTooLarge, "The request body is too large.",
            $"A command's body is at most {limit} bytes.");

    public static ProblemHttpResult InvalidOperationId() =>
        Create(StatusCodes.Status400BadRequest, ProblemTypes.InvalidOperationId, "The operation id is malformed.",
            "An operation id is a UUID such as 0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50.");

    public static ProblemHttpResult OperationNotFound(Guid id) =>
        Create(StatusCodes.Status404NotFound, ProblemTypes.OperationNotFound, "The operation does not exist.",
            $"There is no operation {id}.");

    public static ProblemHttpResult OperationExpired(Guid id, TimeSpan retention) =>
        Create(StatusCodes.Status410Gone, ProblemTypes.OperationExpired, "The operation has expired.",
            $"Operation {id} finished longer ago than the retention period ({retention.TotalDays:0.##} days) and was purged.");

    public static ProblemHttpResult StateConflict(OperationRow current, string rule) =>
        TypedResults.Problem(
            detail: $"The operation is {current.Status}: {rule}.",
            statusCode: StatusCodes.Status409Conflict,
            title: "The operation is not in a state that allows this.",
            type: ProblemTypes.OperationStateConflict,
            extensions: new Dictionary<string, object?> { ["currentStatus"] = current.Status });

    public static ProblemHttpResult ReplayNotAllowed(OperationRow current, string rule) =>
        TypedResults.Problem(
            detail: $"The operation is {current.Status}, and {rule}.",
            statusCode: StatusCodes.Status409Conflict,
            title: "The operation's command does not allow this replay.",
            type: ProblemTypes.ReplayNotAllowed,
            extensions: new Dictionary<string, object?> { ["currentStatus"] = current.Status });

    public static ProblemHttpResult InvalidIdempotencyKey() =>
        Create(StatusCodes.Status400BadRequest, ProblemTypes.InvalidIdempotencyKey, "The Idempotency-Key header is invalid.",
            "An Idempotency-Key is 1 to 255 printable ASCII characters (no control characters).");

    public static ProblemHttpResult IdempotencyKeyReused(Guid existing) =>
        Create(StatusCodes.Status422UnprocessableEntity, ProblemTypes.IdempotencyKeyReused, "The Idempotency-Key was used for another request.",
            $"This key already identifies operation {existing}, submitted with a different method, route or body. Use a new key for a new request.");

    public static ValidationProblem Validation(IDictionary<string, string[]> errors) =>
        TypedResults.ValidationProblem(errors, title: "The request is invalid.", type: ProblemTypes.ValidationFailed,
            detail: "See errors for what to correct.");

    private static string Truncate(string value) => value.Length <= 100 ? value : value[..100] + "...";
}
