using Microsoft.Extensions.Logging;
using Npgsql;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Worker;

/// <summary>
/// Stores an attempt's outcome through database outages and lost acknowledgements, and signals it: retries a write
/// while the database is unreachable for as long as the lease lasts, and tells a write that was committed although
/// its acknowledgement was lost from one that was fenced out.
/// </summary>
internal sealed partial class OutcomeWriter(
    AttemptStore store,
    CommitOutcomeResolver resolver,
    IOperationSignals signals,
    WorkerContext context,
    ILogger<OutcomeWriter> logger)
{
    /// <summary>
    /// Writes an outcome. Returns false when the write was fenced out (the lease was lost) or could not be made in
    /// time; in both cases lease rescue hands the operation to another attempt.
    /// </summary>
    /// <remarks>
    /// A write whose commit outcome was unknown is fenced out when it runs again if the first one was committed after
    /// all: the operation no longer holds this node's lease. So after an unknown outcome, a fenced-out write asks
    /// <paramref name="wasWritten"/> whether the operation holds exactly the outcome this attempt wrote, and if so
    /// reports it as written (to waiters and other nodes) instead of as a lost lease.
    /// </remarks>
    public async Task<bool> WriteAsync(ClaimedOperation operation, Func<CancellationToken, Task<bool>> write,
        Func<CancellationToken, Task<bool>> wasWritten, bool terminal = true, Func<OperationRow?>? current = null, Action? stored = null)
    {
        var deadline = context.Time.GetUtcNow() + context.Options.LeaseDuration;
        var delay = TimeSpan.Zero;
        bool outcomeUnknown = false;
        while (true)
        {
            try
            {
                bool written = await write(CancellationToken.None).ConfigureAwait(false);
                if (!written && outcomeUnknown && await wasWritten(CancellationToken.None).ConfigureAwait(false))
                {
                    resolver.ReportSettled("an attempt's outcome", 1, 0);
                    written = true;
                }

                if (!written)
                {
                    ReportFencedOut(operation);
                    return false;
                }

                // Counted before anyone is told: whoever sees the operation done sees it counted too.
                stored?.Invoke();
                if (terminal)
                {
                    signals.Finished(operation.Id, current?.Invoke());
                }
                else
                {
                    signals.Changed(operation.Id);
                }

                return written;
            }
            catch (NpgsqlException ex) when (context.Time.GetUtcNow() < deadline)
            {
                outcomeUnknown |= ex is CommitOutcomeUnknownException;
                delay = WorkerContext.NextDatabaseBackoff(delay);
                LogOutcomeWriteFailed(ex, delay);
                await context.DelayAsync(delay, CancellationToken.None).ConfigureAwait(false);
            }
            catch (NpgsqlException ex) when (terminal && (outcomeUnknown || ex is CommitOutcomeUnknownException))
            {
                // Given up with the outcome perhaps stored: waiters read the row again rather than wait out their time.
                signals.Finished(operation.Id);
                throw;
            }
        }
    }

    /// <summary>
    /// Commits a transactional handler's transaction, which holds its writes and the operation's success. When the
    /// COMMIT's acknowledgement is lost, the row tells: succeeded on this attempt with this result means the handler's
    /// writes are committed with it (true); anything else means they are not, and the original failure is rethrown so
    /// the attempt is retried like any failed one. The read waits for this transaction's row lock, so it sees its end.
    /// </summary>
    public async Task<bool> CommitAsync(ClaimedOperation operation, NpgsqlTransaction transaction, OperationCompletion completion,
        Action? stored = null)
    {
        int backendProcessId = transaction.Connection!.ProcessID;
        try
        {
            await transaction.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (WriteFailure.LeavesOutcomeUnknown(ex))
        {
            bool committed;
            try
            {
                committed = await resolver.SettleAsync("a transactional handler's commit",
                    async ct => (await store.FindSucceededAsync([completion], ct).ConfigureAwait(false)).Count == 1,
                    new CommitOutcomeUnknownException("The connection failed after COMMIT was sent.", ex, backendProcessId),
                    CancellationToken.None).ConfigureAwait(false);
            }
            catch (CommitOutcomeUnknownException)
            {
                // Still unknown: if it was committed the operation is done; if not, its lease expires and another attempt
                // runs. Waiters read the row again rather than wait out their time.
                signals.Finished(operation.Id);
                return false;
            }

            if (!committed)
            {
                throw;
            }

            resolver.ReportSettled("a transactional handler's commit", 1, 0);
        }

        stored?.Invoke();
        signals.Finished(operation.Id);
        return true;
    }

    /// <summary>
    /// Whether the operation holds one of the given outcomes of this very attempt (not under any lease): what an outcome
    /// write whose acknowledgement was lost leaves behind when it was committed.
    /// </summary>
    public Func<CancellationToken, Task<bool>> LeftAs(ClaimedOperation operation, params (string Status, string? ErrorType)[] outcomes) =>
        async ct => await store.ReadOutcomeAsync(operation.Id, ct).ConfigureAwait(false) is { } left
                    && left.Attempts == operation.Attempts && left.LockedBy is null
                    && outcomes.Any(o => o.Status == left.Status && (o.ErrorType is null || o.ErrorType == left.ErrorType));

    /// <summary>A running attempt's progress was stored.</summary>
    public void ReportProgressStored(Guid id) => signals.Changed(id);

    public void ReportFencedOut(ClaimedOperation operation) => LogFencedOut(operation.Attempts);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Attempt {Attempt} lost its lease; its outcome was not stored")]
    private partial void LogFencedOut(int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Storing an outcome failed; retrying in {Delay}")]
    private partial void LogOutcomeWriteFailed(Exception exception, TimeSpan delay);
}
