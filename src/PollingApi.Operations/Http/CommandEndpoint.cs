using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using FluentValidation;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Npgsql;
using PollingApi.Operations.Processing;
using PollingApi.Operations.Storage;

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
        string name = string.Concat(command.Kind.Split('.', '-', '_').Select(part =>
            part.Length == 0 ? part : char.ToUpperInvariant(part[0]) + part[1..]));

        endpoints.MapPost(command.Route, (HttpContext http, CancellationToken cancellationToken) =>
                SubmitAsync<TRequest>(http, command, cancellationToken))
            .WithTags("Commands")
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
            .Produces<OperationResource>(StatusCodes.Status200OK)
            .Produces<OperationResource>(StatusCodes.Status202Accepted)
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .WithMetadata(RequestHeaders.IdempotencyKey)
            .WithMetadata(RequestHeaders.Prefer)
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status200OK,
                "The operation finished within the time asked for with Prefer: wait (or, with an Idempotency-Key, an earlier request's operation is done).",
                ResponseHeaders.Location, ResponseHeaders.OperationLocation, ResponseHeaders.ETag, ResponseHeaders.PreferenceApplied,
                ResponseHeaders.IdempotentReplayed))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status202Accepted,
                "The command is stored (committed) as an operation, pending or already running on this node: poll its Location.",
                ResponseHeaders.Location, ResponseHeaders.OperationLocation, ResponseHeaders.RetryAfter, ResponseHeaders.ETag,
                ResponseHeaders.IdempotentReplayed))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status422UnprocessableEntity,
                "The Idempotency-Key was already used for a different request (idempotency-key-reused)."))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status400BadRequest,
                "The body is not valid JSON (malformed-json), breaks a rule (validation-failed, with errors per field), or the Idempotency-Key is invalid (invalid-idempotency-key)."))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status413PayloadTooLarge, "The body is over the configured limit (payload-too-large)."))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status415UnsupportedMediaType, "The body is not sent as application/json."))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status503ServiceUnavailable,
                "The database cannot be reached. database-unavailable: nothing was stored, retry after Retry-After seconds. " +
                "commit-outcome-unknown: the connection failed after the write was sent, so the operation in operationId may have " +
                "been stored; GET its Location once the service answers again: 404 means it was not stored, anything else is the operation.",
                ResponseHeaders.RetryAfter, ResponseHeaders.Location, ResponseHeaders.OperationLocation));
    }

    private static async Task<IResult> SubmitAsync<TRequest>(HttpContext http, CommandDescriptor command, CancellationToken cancellationToken)
        where TRequest : notnull
    {
        var services = http.RequestServices;
        var options = services.GetRequiredService<IOptions<OperationsOptions>>().Value;

        string? idempotencyKey = null;
        if (http.Request.Headers.TryGetValue(IdempotencyKeyHeader, out var keyValues))
        {
            if (keyValues.Count != 1 || !IsValidIdempotencyKey(keyValues[0]))
            {
                return Problems.InvalidIdempotencyKey();
            }

            idempotencyKey = keyValues[0];
        }

        var body = await ReadBodyAsync(http, options.MaxRequestBodyBytes, cancellationToken).ConfigureAwait(false);
        if (body.Problem is not null)
        {
            return body.Problem;
        }

        TRequest? request;
        try
        {
            request = JsonSerializer.Deserialize<TRequest>(body.Bytes.Span, OperationJson.Options);
        }
        catch (JsonException ex)
        {
            string where = ex.Path is null or "$" ? "" : $" at {ex.Path}";
            string position = ex.LineNumber is { } line ? $" (line {line + 1}, byte {ex.BytePositionInLine + 1})" : "";
            return Problems.MalformedJson($"The body could not be read as a {command.Kind} command{where}{position}: " +
                                          "check the JSON syntax, the property names and the value types.");
        }

        if (request is null)
        {
            return Problems.MalformedJson("The body must be a JSON object.");
        }

        if (services.GetService<IValidator<TRequest>>() is { } validator)
        {
            var validation = await validator.ValidateAsync(request, cancellationToken).ConfigureAwait(false);
            if (!validation.IsValid)
            {
                var errors = validation.Errors
                    .GroupBy(e => JsonNamingPolicy.CamelCase.ConvertName(e.PropertyName), StringComparer.Ordinal)
                    .ToDictionary(g => g.Key, g => g.Select(e => e.ErrorMessage).ToArray(), StringComparer.Ordinal);
                return Problems.Validation(errors);
            }
        }

        var timeProvider = services.GetRequiredService<TimeProvider>();
        var store = services.GetRequiredService<OperationStore>();
        var waiters = services.GetRequiredService<OperationWaiters>();
        var wait = PreferHeader.Wait(http.Request.Headers, options.MaxWait);
        string payload = JsonSerializer.Serialize(request, OperationJson.Options);
        byte[]? requestHash = idempotencyKey is null ? null : RequestHash(http.Request.Method, command.Route, payload);

        // Whole microseconds, as PostgreSQL keeps them: the answer shows the times a later read of the row shows.
        var now = timeProvider.GetUtcNow();
        now = now.AddTicks(-(now.Ticks % 10));
        var operation = new NewOperation(Guid.CreateVersion7(now), OperationOwner.Default, command.Kind, payload,
            command.MaxAttempts ?? options.DefaultMaxAttempts, Activity.Current?.Id, idempotencyKey, requestHash);

        var resolver = services.GetRequiredService<CommitOutcomeResolver>();

        // An insert with a key settles an unknown commit outcome by running again: the key's unique index makes it store
        // nothing when the first one was committed (waiting for it if it is still committing), and the key then leads to
        // this very operation. Null still means "the key belongs to another operation".
        Task<OperationRow?> InsertWithKeyAsync() => resolver.RunAsync("a submit with an idempotency key",
            ct => store.InsertAsync(operation, now.UtcDateTime, ct),
            async ct =>
            {
                var written = await store.InsertAsync(operation, now.UtcDateTime, ct).ConfigureAwait(false);
                var stored = written is null ? await store.FindByIdempotencyKeyAsync(OperationOwner.Default, idempotencyKey!, ct).ConfigureAwait(false) : null;
                bool ours = stored?.Id == operation.Id;
                resolver.ReportSettled("a submit with an idempotency key", ours ? 1 : 0, written is null ? 0 : 1);
                return written ?? (ours ? stored : null);
            }, cancellationToken);

        // Registered before the insert, so a completion that races the answer is not missed.
        var waiter = wait > TimeSpan.Zero ? waiters.Register(operation.Id) : null;
        try
        {
            var row = idempotencyKey is null
                ? await InsertAsync(services, operation, now.UtcDateTime, options.LeaseDuration, cancellationToken).ConfigureAwait(false)
                : await InsertWithKeyAsync().ConfigureAwait(false);
            bool replayed = false;
            if (row is null)
            {
                // The key is taken: the unique index let exactly one insert through. Answer with that operation.
                var existing = await store.FindByIdempotencyKeyAsync(OperationOwner.Default, idempotencyKey!, cancellationToken).ConfigureAwait(false);
                if (existing is null)
                {
                    // Deleted or purged between the two statements: the key is free again.
                    row = await InsertWithKeyAsync().ConfigureAwait(false);
                    existing = row ?? await store.FindByIdempotencyKeyAsync(OperationOwner.Default, idempotencyKey!, cancellationToken).ConfigureAwait(false);
                }

                if (row is null)
                {
                    if (existing is null || existing.RequestHash is null || !existing.RequestHash.AsSpan().SequenceEqual(requestHash))
                    {
                        return Problems.IdempotencyKeyReused(existing?.Id ?? Guid.Empty);
                    }

                    row = existing;
                    replayed = true;
                    http.Response.Headers[OperationResponses.IdempotentReplayedHeader] = "true";
                    if (waiter is not null)
                    {
                        waiter.Dispose();
                        waiter = waiters.Register(row.Id);
                    }
                }
            }

            if (!replayed && row.Status == OperationStatus.Pending)
            {
                services.GetRequiredService<OperationPump>().NotePending();
                services.GetRequiredService<OperationNotifier>().Pending();
            }

            if (waiter is not null && !OperationStatus.IsTerminal(row.Status))
            {
                try
                {
                    row = await OperationsApi.WaitUntilDoneAsync(row.Id, row, waiter, wait, store, waiters, timeProvider, cancellationToken)
                              .ConfigureAwait(false) ?? row;
                }
                catch (NpgsqlException)
                {
                    // The operation is stored: a database failure while waiting for it ends the wait, not the promise.
                    // The answer is the state last read, a 202 the caller polls as usual.
                }
            }

            if (waiter is not null && OperationStatus.IsTerminal(row.Status))
            {
                http.Response.Headers[OperationResponses.PreferenceAppliedHeader] =
                    $"wait={((int)wait.TotalSeconds).ToString(CultureInfo.InvariantCulture)}";
            }

            return OperationResponses.Respond(http, row, services.GetRequiredService<RetryAfterPolicy>(), withLocation: true);
        }
        catch (CommitOutcomeUnknownException)
        {
            return OperationResponses.CommitOutcomeUnknown(http, operation.Id, services.GetRequiredService<RetryAfterPolicy>(),
                $"Operation {operation.Id} may have been stored: the connection to the database failed after the write was sent, " +
                "and whether it was committed could not be confirmed in time. GET its Location once the service answers again: " +
                "404 means it was not stored (submit it again); any other answer is the operation. An Idempotency-Key makes such retries safe.");
        }
        finally
        {
            waiter?.Dispose();
        }
    }

    /// <summary>
    /// Stores an operation without an idempotency key through the group-committed insert. When this node's worker
    /// has a slot to spare, the row is stored already claimed by this node and the worker runs it at once, with no
    /// claim statement and no wake-up in between.
    /// </summary>
    private static async Task<OperationRow> InsertAsync(IServiceProvider services, NewOperation operation, DateTime createdAt,
        TimeSpan leaseDuration, CancellationToken cancellationToken)
    {
        var pump = services.GetRequiredService<OperationPump>();
        bool claim = pump.TryPromiseSlot();
        var insert = new OperationInsert(operation, createdAt, claim ? services.GetRequiredService<NodeIdentity>().Id : null);
        bool committed = false;
        try
        {
            await services.GetRequiredService<OperationBatchWriter>().InsertAsync(insert, cancellationToken).ConfigureAwait(false);
            committed = true;
        }
        catch (CommitOutcomeUnknownException) when (claim)
        {
            claim = false;
            pump.BreakPromiseOfUnknownInsert(operation.Id);
            throw;
        }
        finally
        {
            if (claim && !committed)
            {
                pump.BreakPromise();
            }
        }

        if (claim)
        {
            pump.RunPromised(insert.ToClaimed());
        }

        return insert.ToRow(leaseDuration);
    }

    /// <summary>1 to 255 printable ASCII characters.</summary>
    internal static bool IsValidIdempotencyKey(string? key) =>
        key is { Length: >= 1 and <= 255 } && key.All(c => c is >= ' ' and <= '~');

    /// <summary>What makes two submits "the same request": method, route and the canonical (re-serialised) body.</summary>
    private static byte[] RequestHash(string method, string route, string canonicalPayload) =>
        SHA256.HashData(Encoding.UTF8.GetBytes($"{method}\n{route}\n{canonicalPayload}"));

    private readonly record struct Body(ReadOnlyMemory<byte> Bytes, ProblemHttpResult? Problem);

    private static async Task<Body> ReadBodyAsync(HttpContext http, long limit, CancellationToken cancellationToken)
    {
        var request = http.Request;
        if (!request.HasJsonContentType())
        {
            return new Body(default, Problems.UnsupportedMediaType(request.ContentType));
        }

        if (request.ContentLength > limit)
        {
            return new Body(default, Problems.PayloadTooLarge(limit));
        }

        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
        {
            sizeFeature.MaxRequestBodySize = limit;
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[8192];
        try
        {
            int read;
            while ((read = await request.Body.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (buffer.Length + read > limit)
                {
                    return new Body(default, Problems.PayloadTooLarge(limit));
                }

                buffer.Write(chunk, 0, read);
            }
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return new Body(default, Problems.PayloadTooLarge(limit));
        }

        if (buffer.Length == 0)
        {
            return new Body(default, Problems.MalformedJson("The body is empty; send the command as a JSON object."));
        }

        return new Body(buffer.ToArray(), null);
    }
}
