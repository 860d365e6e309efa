using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using FluentValidation;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using PollingApi.Operations.Lifecycle;
using PollingApi.Operations.Model;
using PollingApi.Operations.Security;

namespace PollingApi.Operations.Http;

/// <summary>
/// The submit endpoint every command shares: read and validate the body, store the operation, wake the
/// local worker and answer <c>202</c> with the status monitor. The <c>202</c> is sent only after the row is
/// committed.
/// </summary>
internal static class CommandEndpoint
{
    public const string IdempotencyKeyHeader = "Idempotency-Key";

    public static void Map<TRequest>(IEndpointRouteBuilder endpoints, CommandDescriptor command)
        where TRequest : notnull
    {
        string name = CommandDescriptor.PascalName(command.Kind);

        endpoints.MapPost(command.Route, (HttpContext http, OperationSubmitter submitter, RetryAfterPolicy retryAfter,
                    IOptions<OperationsOptions> options, CancellationToken cancellationToken) =>
                SubmitAsync<TRequest>(http, command, submitter, retryAfter, options.Value, cancellationToken))
            .WithTags("Commands")
            .RequiresScope(OperationScopes.Submit)
            .WithName("Submit" + name)
            .WithSummary($"Submit a {command.Kind} command")
            .WithDescription($"""
                Validates and stores a `{command.Kind}` command and answers `202 Accepted` at once with its
                operation. Poll the `Location` (or `Operation-Location`) URL until `done` is true; the result
                then has the `{command.ResultType.Name}` shape. Send `Prefer: wait=N` to be answered `200` with the
                finished operation if it is done within N seconds, and an `Idempotency-Key` to make retries of this
                request safe.
                """)
            .Accepts<TRequest>("application/json")
            .WithMetadata(RequestHeaders.IdempotencyKey)
            .WithMetadata(RequestHeaders.Prefer)
            .WithMetadata(RequestHeaders.ScheduledAt)
            .WithMetadata(RequestHeaders.Priority)
            .Responds(StatusCodes.Status200OK,
                "The operation finished within the time asked for with Prefer: wait (or, with an Idempotency-Key, an earlier request's operation is done).",
                ResponseHeaders.Location, ResponseHeaders.OperationLocation, ResponseHeaders.ETag, ResponseHeaders.PreferenceApplied,
                ResponseHeaders.IdempotentReplayed)
            .Responds(StatusCodes.Status202Accepted,
                "The command is stored (committed) as an operation, pending or already running on this node: poll its Location.",
                ResponseHeaders.Location, ResponseHeaders.OperationLocation, ResponseHeaders.RetryAfter, ResponseHeaders.ETag,
                ResponseHeaders.IdempotentReplayed)
            .Responds(StatusCodes.Status400BadRequest,
                "The body is not valid JSON (malformed-json), breaks a rule (validation-failed, with errors per field), the Idempotency-Key is invalid (invalid-idempotency-key), Operation-Scheduled-At is not an instant within the allowed horizon (invalid-scheduled-at), or Operation-Priority is not a digit 0 to 9 (invalid-priority).")
            .RespondsWithProblem(StatusCodes.Status422UnprocessableEntity,
                "The Idempotency-Key was already used for a different request (idempotency-key-reused).")
            .RespondsWithProblem(StatusCodes.Status429TooManyRequests,
                "The tenant's rate limit is reached (rate-limited), or it has as many unfinished operations as its quota allows " +
                "(quota-exceeded: nothing was stored); retry after Retry-After seconds.", ResponseHeaders.RetryAfter)
            .RespondsWithProblem(StatusCodes.Status413PayloadTooLarge, "The body is over the configured limit (payload-too-large).")
            .RespondsWithProblem(StatusCodes.Status415UnsupportedMediaType, "The body is not sent as application/json.")
            .RespondsWithProblem(StatusCodes.Status503ServiceUnavailable,
                "The database cannot be reached. database-unavailable: nothing was stored, retry after Retry-After seconds. " +
                "commit-outcome-unknown: the connection failed after the write was sent, so the operation in operationId may have " +
                "been stored; GET its Location once the service answers again: 404 means it was not stored, anything else is the operation.",
                ResponseHeaders.RetryAfter, ResponseHeaders.Location, ResponseHeaders.OperationLocation);
    }

    private static async Task<Results<OperationResult, ValidationProblem, ProblemHttpResult>> SubmitAsync<TRequest>(HttpContext http,
        CommandDescriptor command, OperationSubmitter submitter, RetryAfterPolicy retryAfter, OperationsOptions options,
        CancellationToken cancellationToken)
        where TRequest : notnull
    {

        string? idempotencyKey = null;
        if (http.Request.Headers.TryGetValue(IdempotencyKeyHeader, out var keyValues))
        {
            if (keyValues.Count != 1 || !IsValidIdempotencyKey(keyValues[0]))
            {
                return Problems.InvalidIdempotencyKey();
            }

            idempotencyKey = keyValues[0];
        }

        DateTime? scheduledAt = null;
        if (http.Request.Headers.TryGetValue(ScheduledAtHeader, out var scheduleValues))
        {
            var now = http.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow();
            if (scheduleValues.Count != 1 || !TryParseInstant(scheduleValues[0], out var instant))
            {
                return Problems.Create(StatusCodes.Status400BadRequest, ProblemTypes.InvalidScheduledAt, "Operation-Scheduled-At is not an instant.",
                    "Send one RFC 3339 date and time with its offset, e.g. 2026-12-01T08:00:00Z.");
            }

            if (instant - now > options.MaxScheduleAhead)
            {
                return Problems.Create(StatusCodes.Status400BadRequest, ProblemTypes.InvalidScheduledAt, "Operation-Scheduled-At is too far ahead.",
                    $"An operation may be scheduled at most {options.MaxScheduleAhead.TotalDays:0.##} days ahead.");
            }

            // Stored to the microsecond, as PostgreSQL keeps it.
            var utc = instant.UtcDateTime;
            scheduledAt = utc.AddTicks(-(utc.Ticks % 10));
        }

        short? priority = null;
        if (http.Request.Headers.TryGetValue(PriorityHeader, out var priorityValues))
        {
            if (priorityValues is not [{ Length: 1 } digit] || digit[0] is < '0' or > '9')
            {
                return Problems.Create(StatusCodes.Status400BadRequest, ProblemTypes.InvalidPriority, "Operation-Priority is not a priority.",
                    "Send one digit from 0 (lowest) to 9 (highest); without the header the kind's priority applies.");
            }

            priority = (short)(digit[0] - '0');
        }

        var body = await JsonRequestBody.ReadAsync<TRequest>(http, options.MaxRequestBodyBytes, $"a {command.Kind} command", cancellationToken)
            .ConfigureAwait(false);
        if (body.Problem is not null)
        {
            return body.Problem;
        }

        var request = body.Value!;

        // A command need not have a validator, so it is looked up rather than injected.
        if (http.RequestServices.GetService<IValidator<TRequest>>() is { } validator)
        {
            var validation = await validator.ValidateAsync(request, cancellationToken).ConfigureAwait(false);
            if (!validation.IsValid)
            {
                return Problems.Validation(ValidationErrors.ByJsonName(validation.Errors));
            }
        }

        string payload = JsonSerializer.Serialize(request, OperationJson.Options);
        var wait = PreferHeader.Wait(http.Request.Headers, options.MaxWait);
        var submission = new Submission(CallerClaims.Caller(http.User), command, payload, idempotencyKey,
            idempotencyKey is null ? null : RequestHash(http.Request.Method, command.Route, payload, scheduledAt, priority), wait, Activity.Current?.Id,
            scheduledAt, priority);
        var submitted = await submitter.SubmitAsync(submission, cancellationToken).ConfigureAwait(false);
        switch (submitted.Status)
        {
            case SubmitStatus.KeyReused:
                return Problems.IdempotencyKeyReused(submitted.OperationId);
            case SubmitStatus.QuotaExceeded:
                http.Response.Headers.RetryAfter = retryAfter.SecondsWhenOverQuota().ToString(CultureInfo.InvariantCulture);
                return Problems.Create(StatusCodes.Status429TooManyRequests, ProblemTypes.QuotaExceeded,
                    "The tenant has too many unfinished operations.",
                    $"This tenant may have {options.MaxUnfinishedPerTenant} pending or running operations at a time, and has that many; " +
                    "submit again when some have finished. Nothing was stored.");
            case SubmitStatus.OutcomeUnknown:
                return OperationResponses.CommitOutcomeUnknown(http, submitted.OperationId, retryAfter,
                    $"Operation {submitted.OperationId} may have been stored: the connection to the database failed after the write was sent, " +
                    "and whether it was committed could not be confirmed in time. GET its Location once the service answers again: " +
                    "404 means it was not stored (submit it again); any other answer is the operation. An Idempotency-Key makes such retries safe.");
        }

        var row = submitted.Row!;
        if (submitted.Replayed)
        {
            http.Response.Headers[OperationResponses.IdempotentReplayedHeader] = "true";
        }

        if (submitted.Waited && OperationStatus.IsTerminal(row.Status))
        {
            http.Response.Headers[OperationResponses.PreferenceAppliedHeader] =
                $"wait={((int)wait.TotalSeconds).ToString(CultureInfo.InvariantCulture)}";
        }

        return new OperationResult(row, withLocation: true);
    }

    /// <summary>1 to 255 printable ASCII characters.</summary>
    internal static bool IsValidIdempotencyKey(string? key) =>
        key is { Length: >= 1 and <= 255 } && key.All(c => c is >= ' ' and <= '~');

    /// <summary>What makes two submits "the same request": method, route and the canonical (re-serialised) body.</summary>
    // A schedule and a priority are part of the request: the same key with another schedule or priority is another
    // request (422). Without them the hash is what it always was.
    private static byte[] RequestHash(string method, string route, string canonicalPayload, DateTime? scheduledAt, short? priority)
    {
        string text = $"{method}\n{route}\n{canonicalPayload}";
        if (scheduledAt is { } at)
        {
            text += $"\n{at.Ticks.ToString(CultureInfo.InvariantCulture)}";
        }

        if (priority is { } p)
        {
            text += $"\npriority={p.ToString(CultureInfo.InvariantCulture)}";
        }

        return SHA256.HashData(Encoding.UTF8.GetBytes(text));
    }

    private static bool TryParseInstant(string? value, out DateTimeOffset instant)
    {
        instant = default;
        // RFC 3339: a date, 'T', a time with optional fractions, and 'Z' or an offset.
        return value is { Length: >= 20 and <= 64 } && value[10] is 'T' or 't'
               && DateTimeOffset.TryParseExact(value, ["yyyy-MM-dd'T'HH:mm:ssK", "yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK"],
                   CultureInfo.InvariantCulture, DateTimeStyles.None, out instant)
               && (value.EndsWith('Z') || value.EndsWith('z') || value[^6] is '+' or '-');
    }

    private const string ScheduledAtHeader = "Operation-Scheduled-At";

    private const string PriorityHeader = "Operation-Priority";
}
