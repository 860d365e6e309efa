using System.ComponentModel;
using System.Text.Json;

namespace PollingApi.Operations.Model;

/// <summary>
/// Who is asking: the tenant that owns what they submit, and whether they see every tenant's operations (an operator
/// with the admin scope) or only their own.
/// </summary>
/// <param name="Tenant">The caller's tenant: what it creates belongs to this tenant, and it sees only this tenant's data.</param>
/// <param name="SeesAllTenants">True for an operator (the admin scope), who may read and manage every tenant's data.</param>
public sealed record OperationCaller(string Tenant, bool SeesAllTenants = false)
{
    /// <summary>The owner a read or change is limited to: null for an operator, who sees every tenant's.</summary>
    public string? OwnerFilter => SeesAllTenants ? null : Tenant;
}

/// <summary>A node's identity in <c>locked_by</c>.</summary>
internal sealed record NodeIdentity(string Id);

/// <summary>Progress as pollers see it.</summary>
[Description("Progress a running handler reported.")]
internal sealed record OperationProgress(
    [property: Description("0 to 100.")] int Percent,
    [property: Description("A short note for humans; null if none.")] string? Message);

/// <summary>An operation's error: an RFC 9457 problem object with a stable <c>type</c>.</summary>
[Description("Why the operation failed: an RFC 9457 problem object.")]
internal sealed record OperationError(
    [property: Description("A stable URI naming the kind of failure, e.g. urn:pollingapi:problem:attempts-exhausted.")] string Type,
    [property: Description("A short summary of the kind of failure.")] string Title,
    [property: Description("What went wrong with this operation; null if nothing more is known.")] string? Detail);

/// <summary>The errors the engine itself stores on operations, as the JSON kept in the <c>error</c> column.</summary>
internal static class OperationErrors
{
    public static readonly string Cancelled = Json(ProblemTypes.OperationCancelled, "The operation was cancelled.",
        "Cancellation was requested through the API.");

    public static readonly string LeaseExpired = Json(ProblemTypes.LeaseExpired, "The operation's worker stopped responding.",
        "The last attempt's worker stopped renewing its lease and no attempts are left.");

    /// <summary>An attempt's entry in the history when its worker stopped renewing the lease.</summary>
    public static readonly string LeaseLost = Json(ProblemTypes.LeaseExpired, "The attempt's worker stopped responding.",
        "The worker stopped renewing the attempt's lease (it crashed, hung or lost the database).");

    /// <summary>An attempt's entry in the history when it failed with a transient error and the operation is retried.</summary>
    public static readonly string AttemptFailed = Json(ProblemTypes.AttemptFailed, "The attempt failed with a transient error.",
        "The operation is retried after a backoff, while attempts are left.");

    /// <summary>An attempt's entry in the history when its node stopped before it finished; it was not counted.</summary>
    public static readonly string Interrupted = Json(ProblemTypes.AttemptInterrupted, "The attempt's node stopped before it finished.",
        "The node's drain time ran out during a shutdown; the operation went back to pending without counting this attempt.");

    /// <summary>An attempt's entry in the history (and, on the last attempt, the operation's error) when it ran out of time.</summary>
    public static string AttemptTimedOut(int timeoutSeconds, bool last) => Json(ProblemTypes.AttemptTimedOut, "The attempt ran out of time.",
        last
            ? $"The last attempt ran longer than the kind's attempt timeout of {timeoutSeconds} s and was cancelled; no attempts are left."
            : $"The attempt ran longer than the kind's attempt timeout of {timeoutSeconds} s and was cancelled; the operation is retried after a backoff.");

    public static string Json(string type, string title, string? detail) =>
        JsonSerializer.Serialize(new OperationError(type, title, detail), OperationJson.Options);
}
