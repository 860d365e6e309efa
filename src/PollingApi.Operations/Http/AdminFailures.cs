using System.ComponentModel;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using PollingApi.Operations.Lifecycle;
using PollingApi.Operations.Security;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Http;

/// <summary>The answer of <c>GET /v1/admin/failures</c>.</summary>
[Description("Failed operations grouped by kind and error type, largest group first.")]
internal sealed record FailureGroups([property: Description("At most 200 groups.")] IReadOnlyList<FailureGroup> Groups);

/// <summary>The failed operations of one kind that share an error type.</summary>
[Description("The failed operations of one kind with one error type.")]
internal sealed record FailureGroup(
    [property: Description("The command kind.")] string Kind,
    [property: Description("The error's problem type, e.g. urn:pollingapi:problem:attempts-exhausted.")] string ErrorType,
    [property: Description("The error's title (of one of them, when they differ).")] string? Title,
    [property: Description("How many operations are in the group.")] long Count,
    [property: Description("When the latest of them failed.")] DateTime? LastFailedAt);

/// <summary>The body of <c>POST /v1/admin/failures/retry</c>: which failed operations to run again.</summary>
[Description("Which failed operations to retry; every filter is optional and they combine.")]
internal sealed record RetryFailuresRequest(
    [property: Description("Only this command kind.")] string? Kind,
    [property: Description("Only failures with this problem type.")] string? ErrorType,
    [property: Description("Only this tenant's operations.")] string? Tenant,
    [property: Description("Continue after this id: the `after` of the previous answer when it said `more`.")] Guid? After);

/// <summary>What one <c>POST /v1/admin/failures/retry</c> did.</summary>
[Description("What one retry request did: one batch, in id order.")]
internal sealed record RetryFailuresResult(
    [property: Description("Operations put back to pending with fresh attempts.")] int Retried,
    [property: Description("Operations whose command refused the replay (see replay-not-allowed); they stay failed.")] int Refused,
    [property: Description("True when more failed operations may match: send the request again with `after`.")] bool More,
    [property: Description("The last id looked at; pass it as `after` to continue. Null when nothing matched.")] Guid? After);

/// <summary>Failures for operators: grouped, and retried in bulk through the same retry path as one operation's.</summary>
internal static class AdminFailures
{
    public const int MaxGroups = 200;
    public const int RetryBatchSize = 200;

    internal static async Task<Results<Ok<FailureGroups>, ValidationProblem>> ListAsync(OperationStore store, CancellationToken cancellationToken,
        string? kind = null, string? tenant = null)
    {
        var errors = new Dictionary<string, string[]>();
        FilterChecks.Check(kind, null, tenant, errors);
        if (errors.Count > 0)
        {
            return Problems.Validation(errors);
        }

        var rows = await store.ReadFailureGroupsAsync(tenant, kind, MaxGroups, cancellationToken).ConfigureAwait(false);
        return TypedResults.Ok(new FailureGroups([.. rows.Select(r => new FailureGroup(r.Kind, r.ErrorType, r.Title, r.Count, r.LastFailedAt))]));
    }

    internal static async Task<Results<Ok<RetryFailuresResult>, ValidationProblem>> RetryAsync(RetryFailuresRequest request, HttpContext http,
        OperationStore store, OperationChanges changes, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        FilterChecks.Check(request.Kind, request.ErrorType, request.Tenant, errors);
        if (errors.Count > 0)
        {
            return Problems.Validation(errors);
        }

        var ids = await store.ListFailedIdsAsync(request.Tenant, request.Kind, request.ErrorType, request.After, RetryBatchSize, cancellationToken)
            .ConfigureAwait(false);
        var caller = CallerClaims.Caller(http.User);
        int retried = 0;
        int refused = 0;
        foreach (var id in ids)
        {
            // One operation at a time through the lifecycle: the command's replay rule, the settling of an unknown commit
            // outcome and the signals to waiters and other nodes are the same as for POST /v1/operations/{id}/retry.
            var result = await changes.RetryAsync(caller, id, cancellationToken).ConfigureAwait(false);
            switch (result.Status)
            {
                case ChangeStatus.Changed:
                    retried++;
                    break;
                case ChangeStatus.Refused:
                    refused++;
                    break;
                default:
                    // Retried, deleted or purged by someone else since it was listed: nothing to do.
                    break;
            }
        }

        return TypedResults.Ok(new RetryFailuresResult(retried, refused, ids.Count == RetryBatchSize, ids.Count > 0 ? ids[^1] : request.After));
    }
}
