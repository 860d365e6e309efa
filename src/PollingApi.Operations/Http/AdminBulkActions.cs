using System.ComponentModel;
using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PollingApi.Operations.Lifecycle;
using PollingApi.Operations.Model;
using PollingApi.Operations.Security;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Http;

/// <summary>The body of <c>POST /v1/admin/operations/retry</c> and <c>/cancel</c>: which operations to act on.</summary>
[Description("Which operations to act on. Every filter is optional and they combine; {} is every operation the action applies to.")]
internal sealed record BulkActionRequest(
    [property: Description("Only operations in this status: failed or cancelled for a retry, pending or running for a cancel.")] string? Status = null,
    [property: Description("Only this command kind.")] string? Kind = null,
    [property: Description("Only this tenant's operations.")] string? Tenant = null,
    [property: Description("Only operations created after this instant (RFC 3339), as in GET /v1/operations.")] string? CreatedAfter = null,
    [property: Description("Only operations created before this instant (RFC 3339), as in GET /v1/operations.")] string? CreatedBefore = null,
    [property: Description("Retry only: only operations whose error has this problem type. Not allowed for a cancel.")] string? ErrorType = null,
    [property: Description("Continue after this id: the `after` of the previous answer.")] Guid? After = null);

/// <summary>What one bulk retry or cancel did.</summary>
[Description("What one bulk request did, in id order.")]
internal sealed record BulkActionResult(
    [property: Description("Operations that matched the filter and were looked at by this request.")] int Matched,
    [property: Description("Operations changed: put back to pending (retry); cancelled, or cancellation requested while running (cancel).")] int Changed,
    [property: Description("Retry only: operations whose command refused the replay (replay-not-allowed); they stay as they were. Always 0 for a cancel.")] int Refused,
    [property: Description("True when the request stopped at its limit and more operations may match: send it again, with `after`.")] bool More,
    [property: Description("The last id looked at (the `after` sent, when nothing matched); pass it as `after` to continue past it.")] Guid? After);

/// <summary>
/// Retry or cancel every operation that matches a filter, for operators: each operation through the same lifecycle step
/// as <c>POST /v1/operations/{id}/retry</c> or <c>/cancel</c>, in batches of ids read in id order, a bounded number per request.
/// </summary>
internal static partial class AdminBulkActions
{
    public const int BatchSize = 500;
    public const int MaxPerRequest = 10_000;

    internal static async Task<Results<Ok<BulkActionResult>, ValidationProblem, ProblemHttpResult>> RetryAsync(HttpContext http,
        OperationStore store, OperationChanges changes, RetryAfterPolicy retryAfter, IOptions<OperationsOptions> options,
        ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        var body = await JsonRequestBody.ReadAsync<BulkActionRequest>(http, options.Value.MaxRequestBodyBytes, "a filter", cancellationToken)
            .ConfigureAwait(false);
        if (body.Problem is not null)
        {
            return body.Problem;
        }

        var request = body.Value!;
        var errors = new Dictionary<string, string[]>();
        if (request.Status is not (null or OperationStatus.Failed or OperationStatus.Cancelled))
        {
            errors["status"] = ["'status' must be failed or cancelled: only those can be retried."];
        }

        var filter = ReadFilter(request, errors);
        if (errors.Count > 0)
        {
            return Problems.Validation(errors);
        }

        bool failed = request.Status is null or OperationStatus.Failed;
        bool cancelled = request.Status is null or OperationStatus.Cancelled;
        var caller = CallerClaims.Caller(http.User);
        return await RunAsync(http, "retry",
            (after, limit, ct) => store.ListRetryableIdsAsync(filter, failed, cancelled, after, limit, ct),
            (id, ct) => changes.RetryAsync(caller, id, ct),
            request.After, retryAfter, loggers, cancellationToken).ConfigureAwait(false);
    }

    internal static async Task<Results<Ok<BulkActionResult>, ValidationProblem, ProblemHttpResult>> CancelAsync(HttpContext http,
        OperationStore store, OperationChanges changes, RetryAfterPolicy retryAfter, IOptions<OperationsOptions> options,
        ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        var body = await JsonRequestBody.ReadAsync<BulkActionRequest>(http, options.Value.MaxRequestBodyBytes, "a filter", cancellationToken)
            .ConfigureAwait(false);
        if (body.Problem is not null)
        {
            return body.Problem;
        }

        var request = body.Value!;
        var errors = new Dictionary<string, string[]>();
        if (request.Status is not (null or OperationStatus.Pending or OperationStatus.Running))
        {
            errors["status"] = ["'status' must be pending or running: only those can be cancelled."];
        }

        // Pending and running operations carry no error (a transient failure's is in the attempt history), so an error
        // type would match nothing: refused rather than answered with a silent zero.
        if (request.ErrorType is not null)
        {
            errors["errorType"] = ["'errorType' does not apply to a cancel: pending and running operations have no error."];
        }

        var filter = ReadFilter(request with { ErrorType = null }, errors);
        if (errors.Count > 0)
        {
            return Problems.Validation(errors);
        }

        bool pending = request.Status is null or OperationStatus.Pending;
        bool running = request.Status is null or OperationStatus.Running;
        var caller = CallerClaims.Caller(http.User);
        return await RunAsync(http, "cancellation",
            (after, limit, ct) => store.ListCancellableIdsAsync(filter, pending, running, after, limit, ct),
            (id, ct) => changes.CancelAsync(caller, id, ct),
            request.After, retryAfter, loggers, cancellationToken).ConfigureAwait(false);
    }

    private static BulkFilter ReadFilter(BulkActionRequest request, Dictionary<string, string[]> errors)
    {
        FilterChecks.Check(request.Kind, request.ErrorType, request.Tenant, errors);
        var createdAfter = FilterChecks.ParseTime(request.CreatedAfter, "createdAfter", errors);
        var createdBefore = FilterChecks.ParseTime(request.CreatedBefore, "createdBefore", errors);
        return new BulkFilter(request.Tenant, request.Kind, request.ErrorType, createdAfter, createdBefore);
    }

    /// <summary>
    /// Reads the matching ids a batch at a time (keyset by id, so memory stays bounded and nothing is looked at twice)
    /// and changes each, one at a time, until none are left or <see cref="MaxPerRequest"/> were looked at.
    /// </summary>
    private static async Task<Results<Ok<BulkActionResult>, ValidationProblem, ProblemHttpResult>> RunAsync(HttpContext http, string change,
        Func<Guid?, int, CancellationToken, Task<IReadOnlyList<Guid>>> readBatch, Func<Guid, CancellationToken, Task<ChangeResult>> apply,
        Guid? after, RetryAfterPolicy retryAfter, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        int matched = 0;
        int changed = 0;
        int refused = 0;
        bool more = false;
        try
        {
            while (true)
            {
                int limit = Math.Min(BatchSize, MaxPerRequest - matched);
                var ids = await readBatch(after, limit, cancellationToken).ConfigureAwait(false);
                matched += ids.Count;
                foreach (var id in ids)
                {
                    // The lifecycle step of one operation: its command's replay rule, the settling of an unknown commit
                    // outcome and the signals to waiters and other nodes are those of the single-operation endpoint.
                    var result = await apply(id, cancellationToken).ConfigureAwait(false);
                    switch (result.Status)
                    {
                        case ChangeStatus.Changed:
                            changed++;
                            break;
                        case ChangeStatus.Refused:
                            refused++;
                            break;
                        case ChangeStatus.OutcomeUnknown:
                            return OperationResponses.CommitOutcomeUnknown(http, id, retryAfter,
                                $"The {change} of operation {id} may have been applied: the connection to the database failed after it " +
                                $"was sent, and whether it was committed could not be confirmed in time. {changed} operations before it " +
                                "were changed; none after it was tried. The request is safe to send again once the service answers: " +
                                "it matches only what is left.");
                        default:
                            // Changed by someone else since it was read (finished, retried, deleted): nothing to do.
                            break;
                    }
                }

                if (ids.Count > 0)
                {
                    after = ids[^1];
                }

                if (ids.Count < limit)
                {
                    break;
                }

                if (matched >= MaxPerRequest)
                {
                    more = true;
                    break;
                }
            }
        }
        catch (Exception ex) when (changed > 0 && !cancellationToken.IsCancellationRequested && DatabaseFailure.IsUnavailable(ex))
        {
            // The usual database-unavailable answer says nothing was changed; here some operations were.
            LogStoppedPartway(loggers.CreateLogger(typeof(AdminBulkActions)), ex, change, changed);
            http.Response.Headers.RetryAfter = retryAfter.SecondsWhenUnavailable().ToString(CultureInfo.InvariantCulture);
            return TypedResults.Problem(
                detail: $"The database could not be reached partway through: {changed} operations were changed before that, and " +
                        "none after. The request is safe to send again after Retry-After seconds: it matches only what is left.",
                statusCode: StatusCodes.Status503ServiceUnavailable,
                title: "The service is temporarily unavailable.",
                type: ProblemTypes.DatabaseUnavailable,
                extensions: new Dictionary<string, object?> { ["changed"] = changed });
        }

        return TypedResults.Ok(new BulkActionResult(matched, changed, refused, more, after));
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Database unavailable during a bulk {Change} after {Changed} operations were changed")]
    private static partial void LogStoppedPartway(ILogger logger, Exception exception, string change, int changed);
}
