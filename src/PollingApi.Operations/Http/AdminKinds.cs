using System.ComponentModel;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using PollingApi.Operations.Lifecycle;
using PollingApi.Operations.Worker;

namespace PollingApi.Operations.Http;

/// <summary>A kind's run-time settings, as <c>GET /v1/admin/kinds</c> shows them.</summary>
[Description("A kind's run-time settings, cluster-wide.")]
internal sealed record KindSettingsResource(
    [property: Description("The command kind.")] string Kind,
    [property: Description("True while no operation of the kind is claimed; submits are still accepted and wait.")] bool Paused,
    [property: Description("How many operations of the kind may run at once across all nodes; null for no cap.")] int? MaxConcurrency,
    [property: Description("How long one attempt may run before its handler's token fires and it ends as a transient failure attempt-timed-out; null for no limit.")]
    int? AttemptTimeoutSeconds,
    [property: Description("The priority of operations submitted without Operation-Priority, 0 (lowest) to 9 (highest).")] int Priority,
    [property: Description("When an operator last changed them; null when the kind has the defaults.")] DateTime? UpdatedAt)
{
    public static KindSettingsResource From(KindSettings settings) =>
        new(settings.Kind, settings.Paused, settings.MaxConcurrency, settings.AttemptTimeoutSeconds, settings.Priority, settings.UpdatedAt);
}

/// <summary>The answer of <c>GET /v1/admin/kinds</c>.</summary>
[Description("Every registered kind's settings, in kind order.")]
internal sealed record KindSettingsList(IReadOnlyList<KindSettingsResource> Items);

/// <summary>The body of <c>PUT /v1/admin/kinds/{kind}</c>: the whole of a kind's settings (a field left out takes its default).</summary>
[Description("A kind's settings; a field left out takes its default (not paused, no cap, no timeout, priority 5).")]
internal sealed record KindSettingsRequest(
    [property: Description("Stop claiming operations of the kind (submits are still accepted).")] bool? Paused,
    [property: Description("1 to 100000 operations of the kind running at once across all nodes; null for no cap.")] int? MaxConcurrency,
    [property: Description("1 to 86400 seconds per attempt; null for no limit.")] int? AttemptTimeoutSeconds,
    [property: Description("0 (lowest) to 9 (highest): the priority of operations submitted without Operation-Priority.")] int? Priority);

/// <summary>Per-kind settings operators change at run time, without a restart.</summary>
internal static class AdminKinds
{
    public const int MaxConcurrencyLimit = 100_000;
    public const int MaxAttemptTimeoutSeconds = 86_400;

    internal static async Task<Ok<KindSettingsList>> ListAsync(OperationKinds kinds, CancellationToken cancellationToken)
    {
        var all = await kinds.ListAsync(cancellationToken).ConfigureAwait(false);
        return TypedResults.Ok(new KindSettingsList([.. all.Select(KindSettingsResource.From)]));
    }

    internal static async Task<Results<Ok<KindSettingsResource>, ProblemHttpResult>> GetAsync(string kind, OperationKinds kinds,
        CancellationToken cancellationToken)
    {
        if (!kinds.IsRegistered(kind))
        {
            return KindNotFound(kind);
        }

        var all = await kinds.ListAsync(cancellationToken).ConfigureAwait(false);
        return TypedResults.Ok(KindSettingsResource.From(all.Single(k => k.Kind == kind)));
    }

    internal static async Task<Results<Ok<KindSettingsResource>, ValidationProblem, ProblemHttpResult>> PutAsync(string kind,
        HttpContext http, OperationKinds kinds, IOptions<OperationsOptions> options, CancellationToken cancellationToken)
    {
        if (!kinds.IsRegistered(kind))
        {
            return KindNotFound(kind);
        }

        // Read strictly: a misspelt field would otherwise be ignored and put back to its default.
        var body = await JsonRequestBody.ReadAsync<KindSettingsRequest>(http, options.Value.MaxRequestBodyBytes, "a kind's settings",
            cancellationToken).ConfigureAwait(false);
        if (body.Problem is not null)
        {
            return body.Problem;
        }

        var request = body.Value!;

        var errors = new Dictionary<string, string[]>();
        if (request.MaxConcurrency is < 1 or > MaxConcurrencyLimit)
        {
            errors["maxConcurrency"] = [$"'maxConcurrency' must be 1 to {MaxConcurrencyLimit}, or null for no cap."];
        }

        if (request.AttemptTimeoutSeconds is < 1 or > MaxAttemptTimeoutSeconds)
        {
            errors["attemptTimeoutSeconds"] = [$"'attemptTimeoutSeconds' must be 1 to {MaxAttemptTimeoutSeconds}, or null for no limit."];
        }

        if (request.Priority is < 0 or > 9)
        {
            errors["priority"] = ["'priority' must be 0 (lowest) to 9 (highest)."];
        }

        if (errors.Count > 0)
        {
            return Problems.Validation(errors);
        }

        var saved = await kinds.SaveAsync(kind, request.Paused ?? false, request.MaxConcurrency, request.AttemptTimeoutSeconds,
            request.Priority ?? KindSettings.DefaultPriority, cancellationToken).ConfigureAwait(false);
        return TypedResults.Ok(KindSettingsResource.From(saved));
    }

    private static ProblemHttpResult KindNotFound(string kind) =>
        Problems.Create(StatusCodes.Status404NotFound, ProblemTypes.KindNotFound, "No such kind.",
            $"No command of kind '{(kind.Length > 200 ? kind[..200] : kind)}' is registered; GET /v1/admin/kinds lists them.");
}
