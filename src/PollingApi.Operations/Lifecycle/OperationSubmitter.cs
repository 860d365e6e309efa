using Microsoft.Extensions.Options;
using Npgsql;
using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;
using PollingApi.Operations.Telemetry;
using PollingApi.Operations.Worker;

namespace PollingApi.Operations.Lifecycle;

/// <summary>A validated command to store: its kind, its canonical payload and what the request asked for.</summary>
internal sealed record Submission(OperationCaller Caller, CommandDescriptor Command, string Payload, string? IdempotencyKey, byte[]? RequestHash, TimeSpan Wait,
    string? TraceParent, DateTime? ScheduledAt = null, short? Priority = null);

internal enum SubmitStatus
{
    /// <summary>Stored (or, with a key, found): <see cref="SubmitResult.Row"/> is the operation.</summary>
    Accepted,

    /// <summary>The idempotency key belongs to a different request's operation, <see cref="SubmitResult.OperationId"/>.</summary>
    KeyReused,

    /// <summary>Whether operation <see cref="SubmitResult.OperationId"/> was stored could not be settled in time.</summary>
    OutcomeUnknown,

    /// <summary>The tenant has as many unfinished operations as <see cref="OperationsOptions.MaxUnfinishedPerTenant"/> allows; nothing was stored.</summary>
    QuotaExceeded,
}

internal sealed record SubmitResult(SubmitStatus Status, Guid OperationId, OperationRow? Row = null, bool Replayed = false, bool Waited = false);

/// <summary>
/// Submits a command: stores it as an operation (see <see cref="OperationInserter"/>), answers a repeated idempotency
/// key with the operation it already names, signals new pending work, and waits for the operation to finish when the
/// request asked to.
/// </summary>
internal sealed class OperationSubmitter(
    OperationInserter inserter,
    OperationStore store,
    OperationSignals signals,
    OperationWaiting waiting,
    TenantQuota quota,
    OperationMetrics metrics,
    KindSettingsCache kindSettings,
    DatabaseClock clock,
    IOptions<OperationsOptions> options,
    TimeProvider timeProvider)
{
    public async Task<SubmitResult> SubmitAsync(Submission submission, CancellationToken cancellationToken)
    {
        if (!await quota.TryAdmitAsync(submission.Caller.Tenant, cancellationToken).ConfigureAwait(false))
        {
            return new SubmitResult(SubmitStatus.QuotaExceeded, Guid.Empty);
        }

        // Its creation time is when it falls due: the database's time, which a node only knows once it has measured it
        // (moments after start; a database that cannot be reached is a 503, as for the insert).
        await clock.WhenSynchronisedAsync(cancellationToken).WaitAsync(options.Value.CommitResolutionTimeout, timeProvider, cancellationToken)
            .ConfigureAwait(false);

        // Whole microseconds, as PostgreSQL keeps them: the answer shows the times a later read of the row shows.
        var now = timeProvider.GetUtcNow();
        now = now.AddTicks(-(now.Ticks % 10));
        var command = submission.Command;
        var operation = new NewOperation(Guid.CreateVersion7(now), submission.Caller.Tenant, command.Kind, submission.Payload,
            command.MaxAttempts ?? options.Value.DefaultMaxAttempts, submission.TraceParent, submission.IdempotencyKey, submission.RequestHash,
            submission.ScheduledAt is { } scheduled && scheduled > now.UtcDateTime ? scheduled : null,
            submission.Priority ?? (short)kindSettings.For(command.Kind).Priority);

        // Registered before the insert, so a completion that races the answer is not missed.
        var waiter = submission.Wait > TimeSpan.Zero ? waiting.Register(operation.Id) : null;
        try
        {
            var row = submission.IdempotencyKey is null
                ? await inserter.InsertAsync(operation, now.UtcDateTime, cancellationToken).ConfigureAwait(false)
                : await inserter.InsertWithKeyAsync(operation, now.UtcDateTime, cancellationToken).ConfigureAwait(false);
            bool replayed = false;
            if (row is null)
            {
                // The key is taken: the unique index let exactly one insert through. Answer with that operation.
                var existing = await store.FindByIdempotencyKeyAsync(operation.Owner, operation.IdempotencyKey!, cancellationToken).ConfigureAwait(false);
                if (existing is null)
                {
                    // Deleted or purged between the two statements: the key is free again.
                    row = await inserter.InsertWithKeyAsync(operation, now.UtcDateTime, cancellationToken).ConfigureAwait(false);
                    existing = row ?? await store.FindByIdempotencyKeyAsync(operation.Owner, operation.IdempotencyKey!, cancellationToken).ConfigureAwait(false);
                }

                if (row is null)
                {
                    if (existing is null || existing.RequestHash is null || !existing.RequestHash.AsSpan().SequenceEqual(operation.RequestHash))
                    {
                        return new SubmitResult(SubmitStatus.KeyReused, existing?.Id ?? Guid.Empty);
                    }

                    row = existing;
                    replayed = true;
                    if (waiter is not null)
                    {
                        waiter.Dispose();
                        waiter = waiting.Register(row.Id);
                    }
                }
            }

            if (!replayed)
            {
                metrics.Submitted(command.Kind);
                if (row.Status == OperationStatus.Pending)
                {
                    signals.Pending();
                }
            }

            if (waiter is not null && !OperationStatus.IsTerminal(row.Status))
            {
                try
                {
                    row = await waiting.UntilDoneAsync(row.Id, row, waiter, submission.Wait, cancellationToken).ConfigureAwait(false) ?? row;
                }
                catch (NpgsqlException)
                {
                    // The operation is stored: a database failure while waiting for it ends the wait, not the promise.
                    // The answer is the state last read, a 202 the caller polls as usual.
                }
            }

            return new SubmitResult(SubmitStatus.Accepted, row.Id, row, replayed, Waited: waiter is not null);
        }
        catch (CommitOutcomeUnknownException)
        {
            return new SubmitResult(SubmitStatus.OutcomeUnknown, operation.Id);
        }
        finally
        {
            waiter?.Dispose();
        }
    }
}
