using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using PollingApi.Operations.Processing;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Http;

/// <summary>Maps <c>/v1/operations</c> (the status monitors and their management) and the route of every registered command.</summary>
public static class OperationsApi
{
    public static IEndpointRouteBuilder MapOperations(this IEndpointRouteBuilder endpoints)
    {
        // A worker node runs handlers and answers health checks; the API is served by the api (and all) nodes.
        if (endpoints.ServiceProvider.GetRequiredService<IOptions<OperationsOptions>>().Value.Role == OperationsRole.Worker)
        {
            return endpoints;
        }

        var operations = endpoints.MapGroup("/v1/operations").WithTags("Operations");

        operations.MapGet("/", ListOperationsAsync)
            .WithName("ListOperations")
            .WithSummary("List operations")
            .WithDescription("""
                The caller's operations, newest first, optionally filtered by status, kind and creation time.
                Pages are keyset-paginated: pass `nextCursor` back as `cursor` for the next page; it is null on the last page.
                """)
            .Produces<OperationPage>(StatusCodes.Status200OK)
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status200OK, "A page of operations."))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status400BadRequest, "A filter, the limit or the cursor is invalid (validation-failed)."))
            .WithMetadata(Unavailable);

        operations.MapGet("/{id}", GetOperationAsync)
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
            .Produces<OperationResource>(StatusCodes.Status200OK)
            .Produces<OperationResource>(StatusCodes.Status202Accepted)
            .Produces(StatusCodes.Status304NotModified)
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status410Gone)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status200OK,
                "The operation is done (succeeded, failed or cancelled); see result or error.", ResponseHeaders.ETag))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status202Accepted,
                "The operation is pending or running: poll again after Retry-After seconds.", ResponseHeaders.RetryAfter, ResponseHeaders.ETag))
            .WithMetadata(RequestHeaders.IfNoneMatch)
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status304NotModified,
                "Nothing changed since the ETag given in If-None-Match.", ResponseHeaders.ETag))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status400BadRequest,
                "The id is not a UUID (invalid-operation-id) or wait is not a whole number of seconds (validation-failed)."))
            .WithMetadata(NotFound)
            .WithMetadata(Gone)
            .WithMetadata(Unavailable);

        operations.MapPost("/{id}/cancel", CancelOperationAsync)
            .WithName("CancelOperation")
            .WithSummary("Cancel an operation")
            .WithDescription("""
                A pending operation is cancelled at once (`200`). For a running one, cancellation is requested
                (`202`): its handler's cancellation token fires and the operation ends `cancelled` when the handler
                stops. Cancelling a cancelled operation is a no-op (`200`); a succeeded or failed one cannot be
                cancelled (`409`).
                """)
            .Produces<OperationResource>(StatusCodes.Status200OK)
            .Produces<OperationResource>(StatusCodes.Status202Accepted)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status410Gone)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status200OK, "The operation is cancelled.", ResponseHeaders.ETag))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status202Accepted,
                "Cancellation of the running operation was requested; poll until it is done.", ResponseHeaders.RetryAfter, ResponseHeaders.ETag))
            .WithMetadata(InvalidId)
            .WithMetadata(NotFound)
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status409Conflict,
                "The operation already succeeded or failed (operation-state-conflict; currentStatus says which)."))
            .WithMetadata(Gone)
            .WithMetadata(ChangeUnavailable);

        operations.MapPost("/{id}/retry", RetryOperationAsync)
            .WithName("RetryOperation")
            .WithSummary("Run a failed or cancelled operation again")
            .WithDescription("""
                The replay path for dead operations: a `failed` or `cancelled` operation goes back to `pending`
                with a fresh set of attempts and is polled like a new submit (`202`). Any other state is a `409`.
                """)
            .Produces<OperationResource>(StatusCodes.Status202Accepted)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status410Gone)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status202Accepted,
                "The operation is pending again: poll its Location.",
                ResponseHeaders.Location, ResponseHeaders.OperationLocation, ResponseHeaders.RetryAfter, ResponseHeaders.ETag))
            .WithMetadata(InvalidId)
            .WithMetadata(NotFound)
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status409Conflict,
                "The operation is not failed or cancelled (operation-state-conflict; currentStatus says what it is)."))
            .WithMetadata(Gone)
            .WithMetadata(ChangeUnavailable);

        operations.MapDelete("/{id}", DeleteOperationAsync)
            .WithName("DeleteOperation")
            .WithSummary("Forget a finished operation")
            .WithDescription("Deletes a succeeded, failed or cancelled operation (`204`). One that is not done is a `409`: cancel it first.")
            .Produces(StatusCodes.Status204NoContent)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status410Gone)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status204NoContent, "The operation is forgotten."))
            .WithMetadata(InvalidId)
            .WithMetadata(NotFound)
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status409Conflict,
                "The operation is pending or running (operation-state-conflict; currentStatus says which)."))
            .WithMetadata(Gone)
            .WithMetadata(ChangeUnavailable);

        endpoints.MapGroup("/v1/admin").WithTags("Admin")
            .MapGet("/consistency", async (Consistency.ConsistencyChecker checker, CancellationToken cancellationToken) =>
                TypedResults.Ok(await checker.RunAsync(cancellationToken).ConfigureAwait(false)))
            .WithName("CheckConsistency")
            .WithSummary("Check the data for holes")
            .WithDescription("""
                Runs every consistency check now: operations running past their lease, operations pending past
                `Operations:PendingAlertAge`, and the checks that commands add (the ledger's balances and entries).
                Each finding names the ids involved and the action to take. An empty `findings` list means consistent.
                """)
            .Produces<ConsistencyReport>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status200OK, "The findings; empty when consistent."))
            .WithMetadata(Unavailable);

        var commands = endpoints.ServiceProvider.GetRequiredService<CommandRegistry>();
        foreach (var command in commands.All)
        {
            command.MapEndpoint(endpoints, command);
        }

        return endpoints;
    }

    private static readonly ResponseDocumentation InvalidId = new(StatusCodes.Status400BadRequest, "The id is not a UUID (invalid-operation-id).");
    private static readonly ResponseDocumentation NotFound = new(StatusCodes.Status404NotFound, "No operation has this id (operation-not-found).");
    private static readonly ResponseDocumentation Gone = new(StatusCodes.Status410Gone,
        "The operation finished longer ago than the retention period and was purged (operation-expired).");
    internal static readonly ResponseDocumentation Unavailable = new(StatusCodes.Status503ServiceUnavailable,
        "The database cannot be reached: retry after Retry-After seconds.", ResponseHeaders.RetryAfter);
    private static readonly ResponseDocumentation ChangeUnavailable = new(StatusCodes.Status503ServiceUnavailable,
        "The database cannot be reached. database-unavailable: nothing was changed, retry after Retry-After seconds. " +
        "commit-outcome-unknown: the connection failed after the change was sent and it may have been applied; GET the " +
        "operation's Location once the service answers again to see its state.",
        ResponseHeaders.RetryAfter, ResponseHeaders.Location, ResponseHeaders.OperationLocation);

    internal static async Task<IResult> ListOperationsAsync(HttpContext http, OperationStore store, CancellationToken cancellationToken,
        string? status = null, string? kind = null, string? createdAfter = null, string? createdBefore = null, string? limit = null,
        string? cursor = null)
    {
        if (!OperationPageRequest.TryParse(status, kind, createdAfter, createdBefore, limit, cursor, out var query, out var errors))
        {
            return Problems.Validation(errors);
        }

        var rows = await store.ListAsync(OperationOwner.Default, query with { Limit = query.Limit + 1 }, cancellationToken).ConfigureAwait(false);
        var page = rows.Take(query.Limit).ToList();
        string? next = rows.Count > query.Limit ? OperationPageRequest.CursorAfter(page[^1].Id) : null;
        return TypedResults.Ok(new OperationPage([.. page.Select(row => OperationResource.From(row, http.Request))], next));
    }

    internal static async Task<IResult> GetOperationAsync(string id, HttpContext http, OperationStore store, RetryAfterPolicy retryAfter,
        OperationWaiters waiters, FinishedOperationCache finishedOperations, IOptions<OperationsOptions> options, TimeProvider timeProvider,
        CancellationToken cancellationToken, string? wait = null)
    {
        if (!Guid.TryParseExact(id, "D", out var operationId))
        {
            return Problems.InvalidOperationId();
        }

        if (!TryParseWait(wait, options.Value.MaxWait, out var waitFor))
        {
            return Problems.Validation(new Dictionary<string, string[]>
            {
                ["wait"] = ["'wait' must be a whole number of seconds from 0 up."],
            });
        }

        if (finishedOperations.TryGet(operationId, OperationOwner.Default, timeProvider.GetUtcNow().UtcDateTime, out var finished))
        {
            return OperationResponses.Respond(http, finished, retryAfter);
        }

        long generation = finishedOperations.Generation;
        using var waiter = waitFor > TimeSpan.Zero ? waiters.Register(operationId) : null;
        var row = await store.FindAsync(operationId, OperationOwner.Default, cancellationToken).ConfigureAwait(false);
        if (row is null)
        {
            return Missing(operationId, options.Value, timeProvider);
        }

        if (waiter is not null && !OperationStatus.IsTerminal(row.Status))
        {
            row = await WaitUntilDoneAsync(operationId, row, waiter, waitFor, store, waiters, timeProvider, cancellationToken).ConfigureAwait(false);
            if (row is null)
            {
                return Missing(operationId, options.Value, timeProvider);
            }
        }

        finishedOperations.Offer(row, generation);
        return OperationResponses.Respond(http, row, retryAfter);
    }

    internal static async Task<IResult> CancelOperationAsync(string id, HttpContext http, OperationStore store, RetryAfterPolicy retryAfter,
        OperationPump pump, OperationWaiters waiters, OperationNotifier notifier, CommitOutcomeResolver resolver,
        IOptions<OperationsOptions> options, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        if (!Guid.TryParseExact(id, "D", out var operationId))
        {
            return Problems.InvalidOperationId();
        }

        var now = timeProvider.GetUtcNow().UtcDateTime;
        // Cancelling is idempotent, so a cancel whose commit outcome is unknown settles by running again.
        return await ChangeAsync("cancellation", operationId, CancelAsync, http, resolver, retryAfter, cancellationToken).ConfigureAwait(false);

        async Task<IResult> CancelAsync(bool settling, CancellationToken ct)
        {
            // A pending operation can turn running between two statements, so try each transition in turn.
            for (int round = 0; round < 3; round++)
            {
                var cancelled = await store.CancelPendingAsync(operationId, OperationOwner.Default, OperationPump.CancelledErrorJson, now, ct)
                    .ConfigureAwait(false);
                if (cancelled is not null)
                {
                    waiters.Notify(operationId);
                    notifier.Done(operationId);
                    return OperationResponses.Respond(http, cancelled, retryAfter);
                }

                var requested = await store.RequestCancelAsync(operationId, OperationOwner.Default, now, ct).ConfigureAwait(false);
                if (requested is not null)
                {
                    RequestCancel();
                    return OperationResponses.Respond(http, requested, retryAfter);
                }

                var current = await store.FindAsync(operationId, OperationOwner.Default, ct).ConfigureAwait(false);
                switch (current?.Status)
                {
                    case null:
                        return Missing(operationId, options.Value, timeProvider);
                    case OperationStatus.Cancelled:
                        if (settling)
                        {
                            // Perhaps cancelled by the write whose acknowledgement was lost: its waiters were not told yet.
                            waiters.Notify(operationId);
                            notifier.Done(operationId);
                        }

                        return OperationResponses.Respond(http, current, retryAfter);
                    case OperationStatus.Running when current.CancelRequested:
                        if (settling)
                        {
                            RequestCancel();
                        }

                        return OperationResponses.Respond(http, current, retryAfter);
                    case OperationStatus.Succeeded:
                    case OperationStatus.Failed:
                        return Problems.StateConflict(current, "only a pending or running operation can be cancelled");
                }
            }

            return Problems.Create(StatusCodes.Status409Conflict, ProblemTypes.OperationStateConflict, "The operation is changing state.",
                "The operation changed state while it was being cancelled; try again.");
        }

        void RequestCancel()
        {
            // The handler may be running right here, or on any other node.
            if (!pump.RequestCancel(operationId))
            {
                notifier.CancelRequested(operationId);
            }
        }
    }

    internal static async Task<IResult> RetryOperationAsync(string id, HttpContext http, OperationStore store, RetryAfterPolicy retryAfter,
        OperationPump pump, OperationNotifier notifier, FinishedOperationCache finishedOperations, CommitOutcomeResolver resolver,
        IOptions<OperationsOptions> options, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        if (!Guid.TryParseExact(id, "D", out var operationId))
        {
            return Problems.InvalidOperationId();
        }

        var now = timeProvider.GetUtcNow().UtcDateTime;
        int? sentAtVersion = null;
        return await ChangeAsync("retry", operationId, RetryAsync, http, resolver, retryAfter, cancellationToken).ConfigureAwait(false);

        // The retry is conditional on the version it saw the operation failed or cancelled at. Only a retry or a delete
        // changes a finished operation, so when settling, a later version means the retry whose acknowledgement was lost
        // (or a concurrent one) was applied, and the same version means it was not: it is sent again.
        async Task<IResult> RetryAsync(bool settling, CancellationToken ct)
        {
            var current = await store.FindAsync(operationId, OperationOwner.Default, ct).ConfigureAwait(false);
            if (current is null)
            {
                return Missing(operationId, options.Value, timeProvider);
            }

            if (settling && sentAtVersion is { } sent && current.Version != sent)
            {
                return Retried(current);
            }

            if (current.Status is not (OperationStatus.Failed or OperationStatus.Cancelled))
            {
                return Problems.StateConflict(current, RetryRule);
            }

            sentAtVersion = current.Version;
            var retried = await store.RetryAsync(operationId, OperationOwner.Default, current.Version, now, ct).ConfigureAwait(false);
            return retried is not null
                ? Retried(retried)
                : await NotChangedAsync(operationId, RetryRule, store, options.Value, timeProvider, ct).ConfigureAwait(false);
        }

        IResult Retried(OperationRow row)
        {
            finishedOperations.Forget(operationId);
            pump.NotePending();
            notifier.Pending();
            return OperationResponses.Respond(http, row, retryAfter, withLocation: true);
        }
    }

    internal static async Task<IResult> DeleteOperationAsync(string id, HttpContext http, OperationStore store, RetryAfterPolicy retryAfter,
        FinishedOperationCache finishedOperations, CommitOutcomeResolver resolver, IOptions<OperationsOptions> options,
        TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        if (!Guid.TryParseExact(id, "D", out var operationId))
        {
            return Problems.InvalidOperationId();
        }

        return await ChangeAsync("delete", operationId, DeleteAsync, http, resolver, retryAfter, cancellationToken).ConfigureAwait(false);

        async Task<IResult> DeleteAsync(bool settling, CancellationToken ct)
        {
            if (await store.DeleteTerminalAsync(operationId, OperationOwner.Default, ct).ConfigureAwait(false))
            {
                finishedOperations.Forget(operationId);
                return TypedResults.NoContent();
            }

            if (settling && await store.FindAsync(operationId, OperationOwner.Default, ct).ConfigureAwait(false) is null)
            {
                // Gone, by the delete whose acknowledgement was lost or by another: what the caller asked for holds.
                finishedOperations.Forget(operationId);
                return TypedResults.NoContent();
            }

            return await NotChangedAsync(operationId, "only a succeeded, failed or cancelled operation can be deleted; cancel it first",
                store, options.Value, timeProvider, ct).ConfigureAwait(false);
        }
    }

    private const string RetryRule = "only a failed or cancelled operation can be retried";

    /// <summary>
    /// Runs a change of an operation (<paramref name="run"/> with <c>settling</c> false). When its commit outcome is
    /// unknown, runs it again with <c>settling</c> true until it answers (see <see cref="CommitOutcomeResolver"/>); when
    /// that cannot be done in time, answers <c>503 commit-outcome-unknown</c> naming the operation.
    /// </summary>
    private static async Task<IResult> ChangeAsync(string change, Guid id, Func<bool, CancellationToken, Task<IResult>> run, HttpContext http,
        CommitOutcomeResolver resolver, RetryAfterPolicy retryAfter, CancellationToken cancellationToken)
    {
        try
        {
            return await resolver.RunAsync($"a {change}", ct => run(false, ct), ct => run(true, ct), cancellationToken).ConfigureAwait(false);
        }
        catch (CommitOutcomeUnknownException)
        {
            return OperationResponses.CommitOutcomeUnknown(http, id, retryAfter,
                $"The {change} of operation {id} may have been applied: the connection to the database failed after the change was sent, " +
                "and whether it was committed could not be confirmed in time. GET the operation's Location once the service answers again to see its state.");
        }
    }

    /// <summary>
    /// Holds the request until the operation is done or <paramref name="waitFor"/> has passed, reading it again only
    /// when notified. Returns the last row read (null if it was deleted meanwhile).
    /// </summary>
    internal static async Task<OperationRow?> WaitUntilDoneAsync(Guid id, OperationRow row, OperationWaiters.Registration registration,
        TimeSpan waitFor, OperationStore store, OperationWaiters waiters, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        var deadline = timeProvider.GetUtcNow() + waitFor;
        var waiter = registration;
        try
        {
            while (true)
            {
                var remaining = deadline - timeProvider.GetUtcNow();
                if (remaining <= TimeSpan.Zero)
                {
                    return row;
                }

                var wakeUp = await waiter.WaitAsync(remaining, timeProvider, cancellationToken).ConfigureAwait(false);
                if (!wakeUp.Notified)
                {
                    return row;
                }

                // This node's worker finished it and handed over the row its completion returned: nothing to read.
                if (wakeUp.Current is { } finished && OperationStatus.IsTerminal(finished.Status))
                {
                    return finished;
                }

                // Woken: register again before reading, so a completion right after the read is not missed.
                if (!ReferenceEquals(waiter, registration))
                {
                    waiter.Dispose();
                }

                waiter = waiters.Register(id);
                var current = await store.FindAsync(id, OperationOwner.Default, cancellationToken).ConfigureAwait(false);
                if (current is null || OperationStatus.IsTerminal(current.Status))
                {
                    return current;
                }

                row = current;
            }
        }
        finally
        {
            if (!ReferenceEquals(waiter, registration))
            {
                waiter.Dispose();
            }
        }
    }

    /// <summary>
    /// Why a conditional change matched no row: 404 or 410 when the operation is not there, else 409 naming its state
    /// and the <paramref name="rule"/> it broke.
    /// </summary>
    private static async Task<IResult> NotChangedAsync(Guid id, string rule, OperationStore store, OperationsOptions options,
        TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        var current = await store.FindAsync(id, OperationOwner.Default, cancellationToken).ConfigureAwait(false);
        return current is null ? Missing(id, options, timeProvider) : Problems.StateConflict(current, rule);
    }

    /// <summary>404 for an id that never existed (or was deleted), 410 for one older than the retention period.</summary>
    private static ProblemHttpResult Missing(Guid id, OperationsOptions options, TimeProvider timeProvider) =>
        OperationExpiry.IsPastRetention(id, timeProvider.GetUtcNow().UtcDateTime, options.Retention)
            ? Problems.OperationExpired(id, options.Retention)
            : Problems.OperationNotFound(id);

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

/// <summary>Who owns an operation. Everything belongs to one default owner until authentication lands.</summary>
public static class OperationOwner
{
    public const string Default = "default";
}
