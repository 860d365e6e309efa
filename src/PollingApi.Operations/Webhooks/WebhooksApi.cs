using System.ComponentModel;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using PollingApi.Operations.Http;
using PollingApi.Operations.Lifecycle;
using PollingApi.Operations.Security;

namespace PollingApi.Operations.Webhooks;

/// <summary>The body of <c>POST /v1/webhooks</c>.</summary>
[Description("A webhook subscription to create.")]
internal sealed record CreateWebhookRequest(
    [property: Description("Where to POST the events: an absolute https URL (http only with Webhooks:AllowHttp).")] string? Url,
    [property: Description("Which events: operation.succeeded, operation.failed, operation.cancelled (at least one).")] string[]? Events,
    [property: Description("Only operations of these kinds; all kinds when null or empty.")] string[]? Kinds);

/// <summary>A subscription as the API shows it; the secret only once, when it is created.</summary>
[Description("A webhook subscription.")]
internal sealed record WebhookSubscription(
    [property: Description("The subscription's id.")] Guid Id,
    [property: Description("Where the events are POSTed.")] string Url,
    [property: Description("The events sent.")] IReadOnlyList<string> Events,
    [property: Description("The kinds whose events are sent; null for all.")] IReadOnlyList<string>? Kinds,
    [property: Description("When it was created.")] DateTime CreatedAt,
    [property: Description("When deliveries stopped (the receiver answered 410 Gone); null while active.")] DateTime? DisabledAt,
    [property: Description("Why deliveries stopped; null while active.")] string? DisabledReason,
    [property: Description("The signing secret (whsec_...): only in the answer that creates the subscription.")] string? Secret)
{
    internal static WebhookSubscription From(WebhookSubscriptionRow row, bool withSecret) =>
        new(row.Id, row.Url, row.Events, row.Kinds, row.CreatedAt, row.DisabledAt, row.DisabledReason, withSecret ? row.Secret : null);
}

/// <summary>A page of subscriptions.</summary>
[Description("The caller's webhook subscriptions, newest first.")]
internal sealed record WebhookSubscriptionList([property: Description("The subscriptions (without secrets).")] IReadOnlyList<WebhookSubscription> Items);

/// <summary><c>/v1/webhooks</c>: a tenant's subscriptions to the ends of its operations, delivered by the engine itself.</summary>
internal static class WebhooksApi
{
    public const string Prefix = "/v1/webhooks";
    public static readonly string[] EventTypes = ["operation.succeeded", "operation.failed", "operation.cancelled"];

    public static void Map(IEndpointRouteBuilder endpoints)
    {
        var webhooks = endpoints.MapGroup(Prefix).WithTags("Webhooks");
        webhooks.MapPost("/", CreateAsync)
            .RequiresScope(OperationScopes.Manage)
            .WithName("CreateWebhook")
            .WithSummary("Subscribe a URL to the ends of operations")
            .WithDescription("""
                Every operation of the caller's tenant that ends with one of `events` (and is of one of `kinds`, when given)
                is POSTed to `url` as `{"type", "timestamp", "data": <the operation>}`, signed the Standard Webhooks way
                (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>` with the
                `whsec_` secret, which only this answer shows). Each delivery is an operation of kind `webhooks.deliver`,
                stored in the transaction that ended the operation: retried with backoff (or after the receiver's
                `Retry-After`) up to 10 attempts, with attempt history and metrics like any operation. The same `webhook-id`
                comes with every attempt of a delivery: deduplicate by it. A `410 Gone` answer disables the subscription.
                """)
            .Responds(StatusCodes.Status201Created, "The subscription, with its secret.", ResponseHeaders.Location)
            .Responds(StatusCodes.Status400BadRequest, "The body is invalid (validation-failed).")
            .RespondsWithProblem(StatusCodes.Status409Conflict, "The tenant has as many subscriptions as it may (webhook-limit-reached).");
        webhooks.MapGet("/", ListAsync)
            .RequiresScope(OperationScopes.Read)
            .WithName("ListWebhooks")
            .WithSummary("List webhook subscriptions")
            .WithDescription("The caller's subscriptions (an admin's: every tenant's), newest first, without their secrets.")
            .Responds(StatusCodes.Status200OK, "The subscriptions.");
        var webhook = webhooks.MapGroup("/{id:guid}");
        webhook.MapGet("/", GetAsync)
            .RequiresScope(OperationScopes.Read)
            .WithName("GetWebhook")
            .WithSummary("Read a webhook subscription")
            .WithDescription("The subscription, without its secret; `disabledAt` says whether deliveries stopped.")
            .Responds(StatusCodes.Status200OK, "The subscription.")
            .RespondsWithProblem(StatusCodes.Status404NotFound, "No subscription of the caller has this id (webhook-not-found).");
        webhook.MapDelete("/", DeleteAsync)
            .RequiresScope(OperationScopes.Manage)
            .WithName("DeleteWebhook")
            .WithSummary("Delete a webhook subscription")
            .WithDescription("No more events are sent to it; deliveries already stored end without sending.")
            .Responds(StatusCodes.Status204NoContent, "Deleted.")
            .RespondsWithProblem(StatusCodes.Status404NotFound, "No subscription of the caller has this id (webhook-not-found).");
        webhook.MapPost("/test", TestAsync)
            .RequiresScope(OperationScopes.Manage)
            .WithName("TestWebhook")
            .WithSummary("Send a test event")
            .WithDescription("""
                Stores a `webhook.test` delivery to the subscription and answers with that delivery's operation: poll its
                `Location` to see whether the receiver accepted it, and its attempts for what it answered.
                """)
            .Responds(StatusCodes.Status202Accepted, "The delivery's operation.", ResponseHeaders.Location)
            .RespondsWithProblem(StatusCodes.Status404NotFound, "No enabled subscription of the caller has this id (webhook-not-found).");
    }

    internal static async Task<Results<Created<WebhookSubscription>, ValidationProblem, ProblemHttpResult>> CreateAsync(CreateWebhookRequest request,
        HttpContext http, WebhookStore store, IOptions<WebhookOptions> options, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        if (WebhookDestinations.ProblemWith(request.Url, options.Value) is { } urlProblem)
        {
            errors["url"] = [urlProblem];
        }

        if (request.Events is not { Length: > 0 and <= 3 } events || events.Any(e => !EventTypes.Contains(e, StringComparer.Ordinal)))
        {
            errors["events"] = [$"'events' must list one or more of {string.Join(", ", EventTypes)}."];
        }

        if (request.Kinds is { Length: > 50 } || request.Kinds?.Any(k => k is null or { Length: 0 or > 200 } || k.Any(char.IsControl)) == true)
        {
            errors["kinds"] = ["'kinds' lists at most 50 kinds of 1 to 200 characters each."];
        }

        if (errors.Count > 0)
        {
            return Problems.Validation(errors);
        }

        var caller = CallerClaims.Caller(http.User);
        var row = new WebhookSubscriptionRow
        {
            Id = Guid.CreateVersion7(),
            Tenant = caller.Tenant,
            Url = request.Url!,
            Events = [.. request.Events!.Distinct(StringComparer.Ordinal)],
            Kinds = request.Kinds is { Length: > 0 } kinds ? [.. kinds.Distinct(StringComparer.Ordinal)] : null,
            Secret = WebhookSignature.NewSecret(),
            CreatedAt = timeProvider.GetUtcNow().UtcDateTime,
        };
        var created = await store.CreateAsync(row, options.Value.MaxSubscriptionsPerTenant, cancellationToken).ConfigureAwait(false);
        if (created is null)
        {
            return Problems.Create(StatusCodes.Status409Conflict, ProblemTypes.Prefix + "webhook-limit-reached",
                "The tenant has as many webhook subscriptions as it may.",
                $"A tenant has at most {options.Value.MaxSubscriptionsPerTenant} subscriptions: delete one first.");
        }

        return TypedResults.Created($"{Prefix}/{created.Id}", WebhookSubscription.From(created, withSecret: true));
    }

    internal static async Task<Ok<WebhookSubscriptionList>> ListAsync(HttpContext http, WebhookStore store, CancellationToken cancellationToken)
    {
        var rows = await store.ListAsync(CallerClaims.Caller(http.User).OwnerFilter, cancellationToken).ConfigureAwait(false);
        return TypedResults.Ok(new WebhookSubscriptionList([.. rows.Select(r => WebhookSubscription.From(r, withSecret: false))]));
    }

    internal static async Task<Results<Ok<WebhookSubscription>, ProblemHttpResult>> GetAsync(Guid id, HttpContext http, WebhookStore store,
        CancellationToken cancellationToken) =>
        await store.FindAsync(id, CallerClaims.Caller(http.User).OwnerFilter, cancellationToken).ConfigureAwait(false) is { } row
            ? TypedResults.Ok(WebhookSubscription.From(row, withSecret: false))
            : NotFound(id);

    internal static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(Guid id, HttpContext http, WebhookStore store,
        CancellationToken cancellationToken) =>
        await store.DeleteAsync(id, CallerClaims.Caller(http.User).OwnerFilter, cancellationToken).ConfigureAwait(false)
            ? TypedResults.NoContent()
            : NotFound(id);

    internal static async Task<Results<OperationResult, ProblemHttpResult>> TestAsync(Guid id, HttpContext http, WebhookStore store,
        OperationQueries queries, OperationSignals signals, CancellationToken cancellationToken)
    {
        var caller = CallerClaims.Caller(http.User);
        if (await store.EnqueueTestAsync(id, caller.OwnerFilter, cancellationToken).ConfigureAwait(false) is not { } delivery)
        {
            return NotFound(id);
        }

        signals.Pending();
        var found = await queries.GetAsync(caller with { SeesAllTenants = true }, delivery, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
        return found.Row is { } row ? new OperationResult(row, withLocation: true) : NotFound(id);
    }

    private static ProblemHttpResult NotFound(Guid id) =>
        Problems.Create(StatusCodes.Status404NotFound, ProblemTypes.Prefix + "webhook-not-found", "The webhook subscription does not exist.",
            $"There is no webhook subscription {id}.");
}
