using System.Text.Json;
using Microsoft.Extensions.Logging;
using Npgsql;
using PollingApi.Operations.Handlers;
using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;
using PollingApi.Operations.Telemetry;

namespace PollingApi.Operations.Worker;

/// <summary>
/// What the end of an attempt writes: its result, its failure (final, or a retry after backoff), its cancellation, its
/// progress while it runs. Each is fenced by this node and the attempt, and stored through
/// <see cref="OutcomeWriter"/>.
/// </summary>
internal sealed partial class AttemptOutcomes(
    AttemptStore store,
    OperationBatchWriter batchWriter,
    FinishedOperationCache finishedOperations,
    RetryBackoff backoff,
    OutcomeWriter writer,
    WorkerContext context,
    OperationMetrics metrics,
    ILogger<AttemptOutcomes> logger)
{
    /// <summary>
    /// Stores a success. Successes are the common outcome: they share group commits with the other handlers'
    /// successes, and the row the completion returns goes to the requests waiting here and to the finished-operation cache.
    /// </summary>
    public async Task SucceedAsync(ClaimedOperation operation, string resultJson)
    {
        OperationRow? completed = null;
        var completion = new OperationCompletion(operation.Id, context.NodeId, operation.Attempts, resultJson, context.Now());
        bool stored = await writer.WriteAsync(operation, async _ =>
        {
            long generation = finishedOperations.Generation;
            completed = await batchWriter.CompleteAsync(completion).ConfigureAwait(false);
            if (completed is not null)
            {
                // The first poll after it finished is answered from memory too.
                finishedOperations.Offer(completed, generation);
            }

            return completed is not null;
        }, async ct => (completed = await store.FindSucceededAsync([completion], ct).ConfigureAwait(false) is [var row] ? row : null) is not null,
            current: () => completed, stored: () => Ended(operation, AttemptOutcome.Succeeded, OperationStatus.Succeeded)).ConfigureAwait(false);
        if (stored)
        {
            LogSucceeded();
        }
    }

    /// <summary>
    /// Marks a transactional handler's operation succeeded in the handler's own transaction and commits both (see
    /// <see cref="OutcomeWriter.CommitAsync"/>), or rolls the handler's writes back when the lease was lost meanwhile. A
    /// commit that fails leaves nothing applied; the caller then treats it as a failed attempt.
    /// </summary>
    public async Task SucceedInTransactionAsync(ClaimedOperation operation, NpgsqlTransaction transaction, string resultJson)
    {
        var completion = new OperationCompletion(operation.Id, context.NodeId, operation.Attempts, resultJson, context.Now());
        bool fenced = await AttemptStore.CompleteInTransactionAsync(completion, transaction, CancellationToken.None).ConfigureAwait(false);
        if (!fenced)
        {
            await transaction.RollbackAsync(CancellationToken.None).ConfigureAwait(false);
            writer.ReportFencedOut(operation);
            return;
        }

        if (await writer.CommitAsync(operation, transaction, completion,
                stored: () => Ended(operation, AttemptOutcome.Succeeded, OperationStatus.Succeeded)).ConfigureAwait(false))
        {
            LogSucceeded();
        }
    }

    /// <summary>
    /// Ends the operation failed with a problem of the given type; <paramref name="outcome"/> says how the attempt ended
    /// (a permanent failure, or the last transient one).
    /// </summary>
    public Task FailAsync(ClaimedOperation operation, string type, string title, string? detail,
        string outcome = AttemptOutcome.PermanentFailure) =>
        writer.WriteAsync(operation, ct => store.EndAsync(operation.Id, context.NodeId, operation.Attempts, OperationStatus.Failed,
                OperationErrors.Json(type, title, detail), outcome, context.Now(), ct),
            writer.LeftAs(operation, (OperationStatus.Failed, type)), stored: () => Ended(operation, outcome, OperationStatus.Failed));

    /// <summary>Ends a running operation cancelled after its handler stopped on request.</summary>
    public Task CancelledAsync(ClaimedOperation operation) =>
        writer.WriteAsync(operation, ct => store.EndAsync(operation.Id, context.NodeId, operation.Attempts, OperationStatus.Cancelled,
                OperationErrors.Cancelled, AttemptOutcome.Cancelled, context.Now(), ct),
            writer.LeftAs(operation, (OperationStatus.Cancelled, ProblemTypes.OperationCancelled)),
            stored: () => Ended(operation, AttemptOutcome.Cancelled, OperationStatus.Cancelled));

    /// <summary>
    /// The attempt was interrupted by the node's shutdown after its drain time and the operation released: the attempt
    /// is not counted against the operation, but it did not finish in time.
    /// </summary>
    public void Interrupted(ClaimedOperation operation) =>
        metrics.AttemptEnded(operation.Kind, AttemptOutcome.TimedOut, operation.StartedTimestamp);

    /// <summary>The attempt's outcome is stored, as <paramref name="outcome"/>; with a terminal <paramref name="status"/>, so is the operation's end.</summary>
    private void Ended(ClaimedOperation operation, string outcome, string? status)
    {
        metrics.AttemptEnded(operation.Kind, outcome, operation.StartedTimestamp);
        if (status is not null)
        {
            metrics.Completed(operation.Kind, status, OperationExpiry.CreatedAt(operation.Id), context.Now());
        }
    }

    /// <summary>A transient failure: the operation is retried after backoff, or fails when its attempts are used up.</summary>
    public async Task FailTransientlyAsync(ClaimedOperation operation, Exception exception)
    {
        if (operation.Attempts >= operation.MaxAttempts)
        {
            LogAttemptsExhausted(exception, operation.Attempts);
            await FailAsync(operation, ProblemTypes.AttemptsExhausted, "The operation failed on every attempt.",
                $"All {operation.MaxAttempts} attempts failed with a transient error.", AttemptOutcome.TransientFailure).ConfigureAwait(false);
            return;
        }

        // A handler that knows when to try again (a receiver's Retry-After) says so; otherwise the usual backoff.
        var delay = exception is RetryOperationLaterException later
            ? TimeSpan.FromTicks(Math.Min(later.RetryAfter.Ticks, RetryOperationLaterException.MaxRetryAfter.Ticks))
            : backoff.Delay(operation.Attempts);
        LogRetryScheduled(exception, operation.Attempts, delay);
        await RetryLaterAsync(operation, delay, OperationErrors.AttemptFailed, AttemptOutcome.TransientFailure).ConfigureAwait(false);
    }

    /// <summary>
    /// The attempt ran longer than its kind's attempt timeout and stopped when its token fired: a transient failure
    /// <c>attempt-timed-out</c>, retried after backoff, or the operation's end when its attempts are used up.
    /// </summary>
    public async Task TimedOutAsync(ClaimedOperation operation, int timeoutSeconds)
    {
        LogTimedOut(operation.Attempts, timeoutSeconds);
        if (operation.Attempts >= operation.MaxAttempts)
        {
            string error = OperationErrors.AttemptTimedOut(timeoutSeconds, last: true);
            await writer.WriteAsync(operation, ct => store.EndAsync(operation.Id, context.NodeId, operation.Attempts, OperationStatus.Failed,
                    error, AttemptOutcome.TimedOut, context.Now(), ct),
                writer.LeftAs(operation, (OperationStatus.Failed, ProblemTypes.AttemptTimedOut)),
                stored: () => Ended(operation, AttemptOutcome.TimedOut, OperationStatus.Failed)).ConfigureAwait(false);
            return;
        }

        await RetryLaterAsync(operation, backoff.Delay(operation.Attempts), OperationErrors.AttemptTimedOut(timeoutSeconds, last: false),
            AttemptOutcome.TimedOut).ConfigureAwait(false);
    }

    private Task<bool> RetryLaterAsync(ClaimedOperation operation, TimeSpan delay, string attemptErrorJson, string outcome) =>
        writer.WriteAsync(operation, ct =>
        {
            var now = context.Now();
            return store.ScheduleRetryAsync(operation.Id, context.NodeId, operation.Attempts, now + delay, now, OperationErrors.Cancelled,
                attemptErrorJson, ct, outcome);
        }, writer.LeftAs(operation, (OperationStatus.Pending, null), (OperationStatus.Cancelled, ProblemTypes.OperationCancelled)),
            terminal: false, stored: () => Ended(operation, outcome, status: null));

    /// <summary>
    /// Publishes a running attempt's progress; a lost lease is logged, not thrown at the handler. The handler waits for
    /// the write only until its token fires: the write itself is not cancelled (it is fenced like every write of the
    /// attempt, and bounded by the command timeout). Cancelling an Npgsql command sends a cancel request on a new
    /// connection, which in a network partition takes as long as the connect timeout, or longer: a handler whose lease
    /// is being given up must not wait for that.
    /// </summary>
    public Task ReportProgressAsync(ClaimedOperation operation, int percent, string? message, CancellationToken cancellationToken)
    {
        string progressJson = JsonSerializer.Serialize(new OperationProgress(percent, message), OperationJson.Options);
        var write = PublishProgressAsync(operation, progressJson);
        return write.IsCompleted ? write : WaitForProgressAsync(write, cancellationToken);
    }

    private async Task PublishProgressAsync(ClaimedOperation operation, string progressJson)
    {
        if (!await store.ReportProgressAsync(operation.Id, context.NodeId, operation.Attempts, progressJson, context.Now(), CancellationToken.None)
                .ConfigureAwait(false))
        {
            writer.ReportFencedOut(operation);
            return;
        }

        writer.ReportProgressStored(operation.Id);
    }

    private async Task WaitForProgressAsync(Task write, CancellationToken cancellationToken)
    {
        try
        {
            await write.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested && !write.IsCompleted)
        {
            // The handler goes on without it; how the write ends is still logged.
            _ = write.ContinueWith(static (ended, state) => ((AttemptOutcomes)state!).LogAbandonedProgressFailed(ended.Exception!.GetBaseException()),
                this, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            throw;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Operation failed on its last attempt {Attempt}")]
    private partial void LogAttemptsExhausted(Exception exception, int attempt);

    [LoggerMessage(Level = LogLevel.Information, Message = "Attempt {Attempt} failed; retrying in {Delay}")]
    private partial void LogRetryScheduled(Exception exception, int attempt, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Attempt {Attempt} ran longer than the kind's attempt timeout of {TimeoutSeconds} s and was cancelled")]
    private partial void LogTimedOut(int attempt, int timeoutSeconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A progress write its handler stopped waiting for failed")]
    private partial void LogAbandonedProgressFailed(Exception exception);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Operation succeeded")]
    private partial void LogSucceeded();
}
