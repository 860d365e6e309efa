using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using PollingApi.Operations.Lifecycle;
using PollingApi.Operations.Security;

namespace PollingApi.Operations.Http;

/// <summary>Maps <c>/v1/operations</c> (the status monitors and their management) and the route of every registered command.</summary>
public static class OperationsApi
{
    /// <summary>
    /// Authorizes each request by its endpoint's scope (signing the caller in on the way), then applies the caller's
    /// tenant's rate limit. Call after the exception handler and before the endpoints. Before that, while the node is
    /// starting and has not reached and migrated its database yet, a request to an endpoint that needs a caller is
    /// answered <c>503 database-unavailable</c> with <c>Retry-After</c>.
    /// </summary>
    public static IApplicationBuilder UseOperationsSecurity(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return app.UseMiddleware<DatabaseStartupMiddleware>()
            .UseAuthentication().UseAuthorization().UseMiddleware<ScopeAuthorizationMiddleware>().UseRateLimiter();
    }

    /// <summary>
    /// The endpoint needs <paramref name="scope"/> (one of <see cref="OperationScopes"/>); the OpenAPI document lists the
    /// 401, 403 and 429 answers of callers without it.
    /// </summary>
    public static RouteHandlerBuilder RequireScope(this RouteHandlerBuilder builder, string scope) => builder.RequiresScope(scope);

    public static IEndpointRouteBuilder MapOperations(this IEndpointRouteBuilder endpoints)
    {
        // A worker node runs handlers and answers health checks; the API is served by the api (and all) nodes.
        if (endpoints.ServiceProvider.GetRequiredService<IOptions<OperationsOptions>>().Value.Role == OperationsRole.Worker)
        {
            return endpoints;
        }

        var operations = endpoints.MapGroup(OperationLinkBuilder.Prefix).WithTags("Operations");

        operations.MapGet("/", ListOperationsAsync)
            .RequiresScope(OperationScopes.Read)
            .WithName("ListOperations")
            .WithSummary("List operations")
            .WithDescription("""
                The caller's operations, newest first, optionally filtered by status, kind and creation time (and, for an admin,
                by tenant: an admin's list has every tenant's operations).
                Pages are keyset-paginated: pass `nextCursor` back as `cursor` for the next page; it is null on the last page.
                """)
            .Responds(StatusCodes.Status200OK, "A page of operations.")
            .Responds(StatusCodes.Status400BadRequest, "A filter, the limit or the cursor is invalid (validation-failed).")
            .RespondsWithProblem(StatusCodes.Status503ServiceUnavailable, Unavailable, ResponseHeaders.RetryAfter);

        operations.MapGet("/events", OperationEvents.StreamAllAsync)
            .RequiresScope(OperationScopes.Read)
            .WithName("StreamOperationsEvents")
            .WithSummary("Follow every matching operation as server-sent events")
            .WithDescription($$"""
                `text/event-stream`: the events of `GET /v1/operations/{id}/events` (`status`, `progress`, `done`, each
                with the whole operation as its `data`) for every operation of the caller's tenant that matches `kind`
                and `status` (an admin's: every tenant's, or the one named by `tenant`), as this node hears of the changes.
                Event ids are `<node epoch>-<sequence>`: a reconnect with `Last-Event-ID` to the same node resumes without
                repeats or gaps while the node still keeps those events (the last {{OperationChangeFeed.Capacity}}, up to
                {{(int)OperationChangeFeed.Retention.TotalMinutes}} minutes); otherwise the stream sends a `: reset` comment
                and goes on from now (read `GET /v1/operations` to catch up). Open streams cost the database nothing while
                nothing changes; while things change, a node reads the changed operations once per 20 ms for all its
                streams together.
                """)
            .WithMetadata(RequestHeaders.LastEventId)
            .Produces<string>(StatusCodes.Status200OK, "text/event-stream")
            .Responds(StatusCodes.Status200OK, "The event stream.")
            .Responds(StatusCodes.Status400BadRequest, "A filter is invalid (validation-failed).");

        var operation = operations.MapGroup("/{id}").AddEndpointFilter(OperationRouteId.RejectInvalidAsync);

        operation.MapGet("/", GetOperationAsync)
            .RequiresScope(OperationScopes.Read)
            .WithName("GetOperation")
            .WithSummary("Get an operation's status")
            .WithDescription("""
                Polls the status monitor of a submitted command. While the operation is `pending` or `running`
                the answer is `202 Accepted` with a `Retry-After` header: wait that many seconds before polling
                again. Once it is `succeeded`, `failed` or `cancelled` (`done` is true) the answer is `200 OK`
                with the `result` or the `error`. With `wait=N` the request is held up to N seconds (capped by the
                server) and answers as soon as the operation is done. Send the `ETag` back in `If-None-Match` to
                get `304 Not Modified` while nothing changed.
                """)
            .WithMetadata(RequestHeaders.IfNoneMatch)
            .Responds(StatusCodes.Status200OK, "The operation is done (succeeded, failed or cancelled); see result or error.", ResponseHeaders.ETag)
            .Responds(StatusCodes.Status202Accepted, "The operation is pending or running: poll again after Retry-After seconds.",
                ResponseHeaders.RetryAfter, ResponseHeaders.ETag)
            .Produces(StatusCodes.Status304NotModified)
            .Responds(StatusCodes.Status304NotModified, "Nothing changed since the ETag given in If-None-Match.", ResponseHeaders.ETag)
            .Responds(StatusCodes.Status400BadRequest,
                "The id is not a UUID (invalid-operation-id) or wait is not a whole number of seconds (validation-failed).")
            .RespondsWithProblem(StatusCodes.Status404NotFound, NotFound)
            .RespondsWithProblem(StatusCodes.Status410Gone, Gone)
            .RespondsWithProblem(StatusCodes.Status503ServiceUnavailable, Unavailable, ResponseHeaders.RetryAfter);

        operation.MapGet("/attempts", ListAttemptsAsync)
            .RequiresScope(OperationScopes.Read)
            .WithName("ListOperationAttempts")
            .WithSummary("List an operation's attempts")
            .WithDescription("""
                Why is it still retrying? Every attempt of the operation, oldest first: when it started and ended, on
                which node, how it ended (`succeeded`, `transient_failure`, `permanent_failure`, `cancelled`,
                `lease_lost`, `timed_out`, or `running` for the one running now), the problem object of a failure and the
                trace id it belongs to. Kept, and purged, with the operation; a replay adds to the same list.
                """)
            .Responds(StatusCodes.Status200OK, "The attempts, oldest first.")
            .RespondsWithProblem(StatusCodes.Status400BadRequest, InvalidId)
            .RespondsWithProblem(StatusCodes.Status404NotFound, NotFound)
            .RespondsWithProblem(StatusCodes.Status410Gone, Gone)
            .RespondsWithProblem(StatusCodes.Status503ServiceUnavailable, Unavailable, ResponseHeaders.RetryAfter);

        operation.MapGet("/events", OperationEvents.StreamAsync)
            .RequiresScope(OperationScopes.Read)
            .WithName("StreamOperationEvents")
            .WithSummary("Follow an operation as server-sent events")
            .WithDescription("""
                `text/event-stream`: an event whenever the operation changes, each with the whole operation (as
                `GET /v1/operations/{id}` shows it) as its `data`, its version as its `id`, and as its `event`: `status`
                (created, claimed, back to pending for a retry, cancellation requested), `progress` (the handler reported
                progress) or `done` (terminal: the stream ends after it). A finished operation answers its `done` event at
                once. `Last-Event-ID` resumes, on any node: only a newer version is sent; `204` when the client already has
                the `done` event (which tells an EventSource to stop reconnecting). A comment line (`: heartbeat`) comes
                every `Operations:EventHeartbeatInterval` (15 s) while nothing happens.
                """)
            .WithMetadata(RequestHeaders.LastEventId)
            .Produces<string>(StatusCodes.Status200OK, "text/event-stream")
            .Responds(StatusCodes.Status200OK, "The event stream.")
            .Produces(StatusCodes.Status204NoContent)
            .Responds(StatusCodes.Status204NoContent, "The operation is done and Last-Event-ID is its last version: nothing more will come.")
            .RespondsWithProblem(StatusCodes.Status400BadRequest, InvalidId)
            .RespondsWithProblem(StatusCodes.Status404NotFound, NotFound)
            .RespondsWithProblem(StatusCodes.Status410Gone, Gone)
            .RespondsWithProblem(StatusCodes.Status503ServiceUnavailable, Unavailable, ResponseHeaders.RetryAfter);

        operation.MapPost("/cancel", CancelOperationAsync)
            .RequiresScope(OperationScopes.Manage)
            .WithName("CancelOperation")
            .WithSummary("Cancel an operation")
            .WithDescription("""
                A pending operation is cancelled at once (`200`). For a running one, cancellation is requested
                (`202`): its handler's cancellation token fires and the operation ends `cancelled` when the handler
                stops. Cancelling a cancelled operation is a no-op (`200`); a succeeded or failed one cannot be
                cancelled (`409`).
                """)
            .Responds(StatusCodes.Status200OK, "The operation is cancelled.", ResponseHeaders.ETag)
            .Responds(StatusCodes.Status202Accepted, "Cancellation of the running operation was requested; poll until it is done.",
                ResponseHeaders.RetryAfter, ResponseHeaders.ETag)
            .RespondsAsAChange("The operation already succeeded or failed (operation-state-conflict; currentStatus says which).");

        operation.MapPost("/retry", RetryOperationAsync)
            .RequiresScope(OperationScopes.Manage)
            .WithName("RetryOperation")
            .WithSummary("Run a failed or cancelled operation again")
            .WithDescription("""
                The replay path for dead operations: a `failed` or `cancelled` operation goes back to `pending`
                with a fresh set of attempts and is polled like a new submit (`202`). Any other state is a `409`.
                """)
            .Responds(StatusCodes.Status200OK,
                "The retry was applied and the operation is already done again: possible when the answer had to wait for a " +
                "lost acknowledgement to be settled.", ResponseHeaders.Location, ResponseHeaders.OperationLocation, ResponseHeaders.ETag)
            .Responds(StatusCodes.Status202Accepted, "The operation is pending again: poll its Location.",
                ResponseHeaders.Location, ResponseHeaders.OperationLocation, ResponseHeaders.RetryAfter, ResponseHeaders.ETag)
            .RespondsAsAChange("The operation is not failed or cancelled (operation-state-conflict; currentStatus says what it is), " +
                "or its command does not allow this replay (replay-not-allowed: never, not this long after it ended, or not after a business failure).");

        operation.MapDelete("/", DeleteOperationAsync)
            .RequiresScope(OperationScopes.Manage)
            .WithName("DeleteOperation")
            .WithSummary("Forget a finished operation")
            .WithDescription("Deletes a succeeded, failed or cancelled operation (`204`). One that is not done is a `409`: cancel it first.")
            .Responds(StatusCodes.Status204NoContent, "The operation is forgotten.")
            .RespondsAsAChange("The operation is pending or running (operation-state-conflict; currentStatus says which).");

        var admin = endpoints.MapGroup("/v1/admin").WithTags("Admin").WithMetadata(ScopeRequirement.For(OperationScopes.Admin));
        admin.MapGet("/stats", AdminStats.ReadAsync)
            .WithName("GetStats")
            .WithSummary("What every kind of operation is doing")
            .WithDescription("""
                Per kind, cluster-wide: pending (due now), running and scheduled retries now; succeeded and failed in the
                last 5 minutes; how long the oldest due operation has waited; and the median and 95th percentile run time of
                the last 5 minutes' successes; and how many operations of every kind finished in each 30 seconds of those 5
                minutes. Each node reads the figures at most once a second, however many callers ask.
                """)
            .Responds(StatusCodes.Status200OK, "The figures, one entry per kind.")
            .RespondsToCallers(OperationScopes.Admin)
            .RespondsWithProblem(StatusCodes.Status503ServiceUnavailable, Unavailable, ResponseHeaders.RetryAfter);
        admin.MapGet("/failures", AdminFailures.ListAsync)
            .WithName("ListFailureGroups")
            .WithSummary("Failed operations, grouped by kind and error type")
            .WithDescription("""
                Every failed operation (of every tenant, or of one), grouped by kind and the problem type of its error, the
                largest group first, at most 200 groups: what failed and why, at a glance.
                """)
            .Responds(StatusCodes.Status200OK, "The groups; empty when nothing failed.")
            .Responds(StatusCodes.Status400BadRequest, "A filter is invalid (validation-failed).")
            .RespondsToCallers(OperationScopes.Admin)
            .RespondsWithProblem(StatusCodes.Status503ServiceUnavailable, Unavailable, ResponseHeaders.RetryAfter);
        admin.MapPost("/failures/retry", AdminFailures.RetryAsync)
            .WithName("RetryFailures")
            .WithSummary("Retry every failed operation that matches")
            .WithDescription($$"""
                Retries failed operations that match the filters, {{AdminFailures.RetryBatchSize}} at most per request, in id
                order, each exactly as `POST /v1/operations/{id}/retry` would (a command that does not allow a replay
                refuses it). When the answer says `more`, send the same filters again with its `after`.
                """)
            .Responds(StatusCodes.Status200OK, "How many were retried and refused, and where to continue.")
            .Responds(StatusCodes.Status400BadRequest, "The body or a filter is invalid.")
            .RespondsToCallers(OperationScopes.Admin)
            .RespondsWithProblem(StatusCodes.Status503ServiceUnavailable, ChangeUnavailable, ResponseHeaders.RetryAfter);
        admin.MapGet("/kinds", AdminKinds.ListAsync)
            .WithName("ListKinds")
            .WithSummary("Every kind's run-time settings")
            .WithDescription("""
                Every registered kind with its settings: paused, the cluster-wide cap on running operations, the attempt
                timeout and the default priority. A kind no operator has changed shows the defaults.
                """)
            .Responds(StatusCodes.Status200OK, "The kinds, in kind order.")
            .RespondsToCallers(OperationScopes.Admin)
            .RespondsWithProblem(StatusCodes.Status503ServiceUnavailable, Unavailable, ResponseHeaders.RetryAfter);
        admin.MapGet("/kinds/{kind}", AdminKinds.GetAsync)
            .WithName("GetKind")
            .WithSummary("One kind's run-time settings")
            .Responds(StatusCodes.Status200OK, "The kind's settings.")
            .RespondsWithProblem(StatusCodes.Status404NotFound, "No command of this kind is registered (kind-not-found).")
            .RespondsToCallers(OperationScopes.Admin)
            .RespondsWithProblem(StatusCodes.Status503ServiceUnavailable, Unavailable, ResponseHeaders.RetryAfter);
        admin.MapPut("/kinds/{kind}", AdminKinds.PutAsync)
            .WithName("PutKind")
            .WithSummary("Change a kind's settings at run time")
            .WithDescription("""
                Replaces the kind's settings (a field left out takes its default), stored in the database and in effect on
                every node within moments, without a restart:
                - `paused`: no operation of the kind is claimed (submits are still accepted and wait); `false` resumes at once.
                - `maxConcurrency`: at most this many operations of the kind run at once, counted across all nodes (claims
                  of capped kinds take turns on one database lock). Operations of a capped kind are never claimed at insert.
                - `attemptTimeoutSeconds`: an attempt running longer has its handler's token fired and ends as a transient
                  failure `attempt-timed-out` (retried while attempts are left, shown in the attempt history). A handler
                  that ignores its token stops having its lease renewed: the lease expires, another attempt takes over, and
                  whatever the first one writes afterwards is refused. Applies to attempts that start after the change.
                - `priority`: 0 to 9, the priority of operations submitted without `Operation-Priority` from now on.
                """)
            .Accepts<KindSettingsRequest>("application/json")
            .Responds(StatusCodes.Status200OK, "The kind's settings as stored.")
            .Responds(StatusCodes.Status400BadRequest,
                "The body is not the settings' JSON (malformed-json: also an unknown property or a wrong type), or a field is out of range (validation-failed, errors names the field).")
            .RespondsWithProblem(StatusCodes.Status413PayloadTooLarge, "The body is over the configured limit (payload-too-large).")
            .RespondsWithProblem(StatusCodes.Status415UnsupportedMediaType, "The body is not sent as application/json.")
            .RespondsWithProblem(StatusCodes.Status404NotFound, "No command of this kind is registered (kind-not-found).")
            .RespondsToCallers(OperationScopes.Admin)
            .RespondsWithProblem(StatusCodes.Status503ServiceUnavailable, ChangeUnavailable, ResponseHeaders.RetryAfter);
        admin.MapPost("/operations/retry", AdminBulkActions.RetryAsync)
            .WithName("RetryOperations")
            .WithSummary("Retry every failed or cancelled operation that matches")
            .WithDescription($$"""
                Puts every failed or cancelled operation (of every tenant, or of one) that matches the filter back to
                `pending`, each exactly as `POST /v1/operations/{id}/retry` would: a command that does not allow the replay
                refuses it (counted in `refused`; the operation stays as it was). `status` narrows to `failed` or
                `cancelled`; `errorType` matches the problem type of the operation's error. The ids are read in id order,
                {{AdminBulkActions.BatchSize}} at a time, and one request looks at {{AdminBulkActions.MaxPerRequest}} at most:
                when the answer says `more`, send the request again, with `after` from the answer to continue past what this
                one looked at. The request is safe to repeat: the operations it retried no longer match, so a second one
                changes only what is left.
                """)
            .Accepts<BulkActionRequest>("application/json")
            .Responds(StatusCodes.Status200OK, "How many matched, were retried and were refused, and whether more may match.")
            .Responds(StatusCodes.Status400BadRequest,
                "The body is not a JSON filter (malformed-json: also an unknown property), or a filter is invalid (validation-failed, errors names the field).")
            .RespondsWithProblem(StatusCodes.Status413PayloadTooLarge, "The body is over the configured limit (payload-too-large).")
            .RespondsWithProblem(StatusCodes.Status415UnsupportedMediaType, "The body is not sent as application/json.")
            .RespondsToCallers(OperationScopes.Admin)
            .RespondsWithProblem(StatusCodes.Status503ServiceUnavailable, BulkChangeUnavailable, ChangeUnavailableHeaders);
        admin.MapPost("/operations/cancel", AdminBulkActions.CancelAsync)
            .WithName("CancelOperations")
            .WithSummary("Cancel every pending or running operation that matches")
            .WithDescription($$"""
                Cancels every pending or running operation (of every tenant, or of one) that matches the filter, each exactly
                as `POST /v1/operations/{id}/cancel` would: a pending one is cancelled at once, a running one has
                cancellation requested (its handler's cancellation token fires and it ends `cancelled` when the handler
                stops); both count as `changed`. `status` narrows to `pending` or `running`; `errorType` is refused, since
                pending and running operations have no error. A running operation whose cancellation was already requested
                does not match again. The ids are read in id order, {{AdminBulkActions.BatchSize}} at a time, and one request
                looks at {{AdminBulkActions.MaxPerRequest}} at most: when the answer says `more`, send the request again. The
                request is safe to repeat: what it cancelled no longer matches.
                """)
            .Accepts<BulkActionRequest>("application/json")
            .Responds(StatusCodes.Status200OK, "How many matched and were cancelled (or asked to cancel), and whether more may match.")
            .Responds(StatusCodes.Status400BadRequest,
                "The body is not a JSON filter (malformed-json: also an unknown property), or a filter is invalid (validation-failed, errors names the field).")
            .RespondsWithProblem(StatusCodes.Status413PayloadTooLarge, "The body is over the configured limit (payload-too-large).")
            .RespondsWithProblem(StatusCodes.Status415UnsupportedMediaType, "The body is not sent as application/json.")
            .RespondsToCallers(OperationScopes.Admin)
            .RespondsWithProblem(StatusCodes.Status503ServiceUnavailable, BulkChangeUnavailable, ChangeUnavailableHeaders);
        admin.MapGet("/consistency", async (Consistency.ConsistencyChecker checker, CancellationToken cancellationToken) =>
                TypedResults.Ok(await checker.RunAsync(cancellationToken).ConfigureAwait(false)))
            .WithName("CheckConsistency")
            .WithSummary("Check the data for holes")
            .WithDescription("""
                Runs every consistency check now: operations running past their lease, operations pending past
                `Operations:PendingAlertAge`, and the checks that commands add (the ledger's balances and entries).
                Each finding names the ids involved and the action to take. An empty `findings` list means consistent.
                """)
            .Responds(StatusCodes.Status200OK, "The findings; empty when consistent.")
            .RespondsToCallers(OperationScopes.Admin)
            .RespondsWithProblem(StatusCodes.Status503ServiceUnavailable, Unavailable, ResponseHeaders.RetryAfter);

        Webhooks.WebhooksApi.Map(endpoints);

        var commands = endpoints.ServiceProvider.GetRequiredService<CommandRegistry>();
        foreach (var command in commands.All)
        {
            command.MapEndpoint(endpoints, command);
        }

        return endpoints;
    }

    /// <summary>The problems every change of an operation (cancel, retry, delete) may answer; <paramref name="conflict"/> says when it is a 409.</summary>
    private static RouteHandlerBuilder RespondsAsAChange(this RouteHandlerBuilder builder, string conflict) => builder
        .RespondsWithProblem(StatusCodes.Status400BadRequest, InvalidId)
        .RespondsWithProblem(StatusCodes.Status404NotFound, NotFound)
        .RespondsWithProblem(StatusCodes.Status409Conflict, conflict)
        .RespondsWithProblem(StatusCodes.Status410Gone, Gone)
        .RespondsWithProblem(StatusCodes.Status503ServiceUnavailable, ChangeUnavailable, ChangeUnavailableHeaders);

    private const string InvalidId = "The id is not a UUID (invalid-operation-id).";
    private const string NotFound = "No operation has this id (operation-not-found).";
    private const string Gone = "The operation finished longer ago than the retention period and was purged (operation-expired).";
    internal const string Unavailable = "The database cannot be reached: retry after Retry-After seconds.";
    private const string ChangeUnavailable =
        "The database cannot be reached. database-unavailable: nothing was changed, retry after Retry-After seconds. " +
        "commit-outcome-unknown: the connection failed after the change was sent and it may have been applied; GET the " +
        "operation's Location once the service answers again to see its state.";
    private const string BulkChangeUnavailable =
        "The database cannot be reached. database-unavailable: the request stopped; with changed, that many operations " +
        "were changed before it did, otherwise none. commit-outcome-unknown: the change of the operation in operationId (and " +
        "Location) may have been applied, those before it were. Either way the request is safe to send again once the service answers.";
    private static readonly ResponseHeader[] ChangeUnavailableHeaders =
        [ResponseHeaders.RetryAfter, ResponseHeaders.Location, ResponseHeaders.OperationLocation];

    internal static async Task<Results<Ok<OperationPage>, ValidationProblem>> ListOperationsAsync(HttpContext http, OperationQueries queries,
        OperationQueueEstimator estimator, CancellationToken cancellationToken, string? status = null, string? kind = null, string? tenant = null,
        string? createdAfter = null, string? createdBefore = null, string? limit = null, string? cursor = null)
    {
        if (!OperationPageRequest.TryParse(status, kind, tenant, createdAfter, createdBefore, limit, cursor, out var query, out var errors))
        {
            return Problems.Validation(errors);
        }

        var rows = await queries.ListAsync(CallerClaims.Caller(http.User), query, cancellationToken).ConfigureAwait(false);
        var page = rows.Take(query.Limit).ToList();
        string? next = rows.Count > query.Limit ? OperationPageRequest.CursorAfter(page[^1].Id) : null;
        return TypedResults.Ok(new OperationPage([.. page.Select(row => OperationResource.From(row, http.Request, estimator.For(row)))], next));
    }

    internal static async Task<Results<OperationResult, ValidationProblem, ProblemHttpResult>> GetOperationAsync(OperationRouteId id,
        HttpContext http, OperationQueries queries, IOptions<OperationsOptions> options, CancellationToken cancellationToken, string? wait = null)
    {
        if (!TryParseWait(wait, options.Value.MaxWait, out var waitFor))
        {
            return Problems.Validation(new Dictionary<string, string[]>
            {
                ["wait"] = ["'wait' must be a whole number of seconds from 0 up."],
            });
        }

        var found = await queries.GetAsync(CallerClaims.Caller(http.User), id.Value, waitFor, cancellationToken).ConfigureAwait(false);
        return found.Row is { } row ? new OperationResult(row) : Missing(id.Value, found.Expired, options.Value);
    }

    internal static async Task<Results<Ok<AttemptPage>, ProblemHttpResult>> ListAttemptsAsync(OperationRouteId id, HttpContext http,
        OperationQueries queries, IOptions<OperationsOptions> options, CancellationToken cancellationToken)
    {
        var history = await queries.AttemptsAsync(CallerClaims.Caller(http.User), id.Value, cancellationToken).ConfigureAwait(false);
        return history is null
            ? Missing(id.Value, queries.Missing(id.Value).Expired, options.Value)
            : TypedResults.Ok(AttemptPage.From(history));
    }

    internal static async Task<Results<OperationResult, ProblemHttpResult>> CancelOperationAsync(OperationRouteId id, HttpContext http,
        OperationChanges changes, RetryAfterPolicy retryAfter, IOptions<OperationsOptions> options, CancellationToken cancellationToken) =>
        Answer(await changes.CancelAsync(CallerClaims.Caller(http.User), id.Value, cancellationToken).ConfigureAwait(false), "cancellation", id.Value, http, retryAfter, options.Value);

    internal static async Task<Results<OperationResult, ProblemHttpResult>> RetryOperationAsync(OperationRouteId id, HttpContext http,
        OperationChanges changes, RetryAfterPolicy retryAfter, IOptions<OperationsOptions> options, CancellationToken cancellationToken) =>
        Answer(await changes.RetryAsync(CallerClaims.Caller(http.User), id.Value, cancellationToken).ConfigureAwait(false), "retry", id.Value, http, retryAfter, options.Value,
            withLocation: true);

    internal static async Task<Results<NoContent, ProblemHttpResult>> DeleteOperationAsync(OperationRouteId id, HttpContext http,
        OperationChanges changes, RetryAfterPolicy retryAfter, IOptions<OperationsOptions> options, CancellationToken cancellationToken)
    {
        var result = await changes.DeleteAsync(CallerClaims.Caller(http.User), id.Value, cancellationToken).ConfigureAwait(false);
        return result.Status == ChangeStatus.Changed
            ? TypedResults.NoContent()
            : Problem(result, "delete", id.Value, http, retryAfter, options.Value);
    }

    private static Results<OperationResult, ProblemHttpResult> Answer(ChangeResult result, string change, Guid id, HttpContext http,
        RetryAfterPolicy retryAfter, OperationsOptions options, bool withLocation = false) =>
        result is { Status: ChangeStatus.Changed, Row: { } row }
            ? new OperationResult(row, withLocation)
            : Problem(result, change, id, http, retryAfter, options);

    /// <summary>The problem answer of a change that did not apply (or may have).</summary>
    private static ProblemHttpResult Problem(ChangeResult result, string change, Guid id, HttpContext http, RetryAfterPolicy retryAfter,
        OperationsOptions options) => result.Status switch
    {
        ChangeStatus.Missing => Missing(id, result.Expired, options),
        ChangeStatus.Conflict => Problems.StateConflict(result.Row!, result.Rule!),
        ChangeStatus.Refused => Problems.ReplayNotAllowed(result.Row!, result.Rule!),
        ChangeStatus.OutcomeUnknown => OperationResponses.CommitOutcomeUnknown(http, id, retryAfter,
            $"The {change} of operation {id} may have been applied: the connection to the database failed after the change was sent, " +
            "and whether it was committed could not be confirmed in time. GET the operation's Location once the service answers again to see its state."),
        _ => Problems.Create(StatusCodes.Status409Conflict, ProblemTypes.OperationStateConflict, "The operation is changing state.",
            "The operation changed state while it was being cancelled; try again."),
    };

    /// <summary>404 for an id that never existed (or was deleted), 410 for one older than the retention period.</summary>
    private static ProblemHttpResult Missing(Guid id, bool expired, OperationsOptions options) =>
        expired ? Problems.OperationExpired(id, options.Retention) : Problems.OperationNotFound(id);

    /// <summary>Reads a wait in whole seconds, capped by <paramref name="max"/>. Absent means no wait.</summary>
    internal static bool TryParseWait(string? value, TimeSpan max, out TimeSpan wait)
    {
        wait = TimeSpan.Zero;
        if (value is null)
        {
            return true;
        }

        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int seconds))
        {
            // Larger than an int but all digits: still a valid (if absurd) wait, capped below.
            if (value.Length is 0 or > 20 || !value.All(char.IsAsciiDigit))
            {
                return false;
            }

            seconds = int.MaxValue;
        }

        wait = TimeSpan.FromSeconds(Math.Min(seconds, max.TotalSeconds));
        return true;
    }
}
