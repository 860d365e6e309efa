using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace PollingApi.Operations.Storage;

/// <summary>
/// Settles a write whose commit outcome is unknown (<see cref="CommitOutcomeUnknownException"/>): runs an idempotent
/// form of it (re-insert by id, re-run a conditional update, read the row back) on fresh connections until one answers,
/// within <see cref="OperationsOptions.CommitResolutionTimeout"/> and the caller's own cancellation. When the budget
/// ends first, the outcome stays unknown and the caller must say so.
/// </summary>
/// <remarks>
/// A settling statement must not look before the broken connection's transaction has ended, or it could see "not
/// stored" and then the commit land. So, first, settling waits until that connection's server process is gone (the
/// server notices the broken connection and ends it; a restarted server has none of the old ones). The settling
/// statements also wait for any row lock such a transaction holds (a re-insert on the primary key, an update or a
/// locking read on the row), for the case where the process could not be named.
/// </remarks>
internal sealed partial class CommitOutcomeResolver(
    NpgsqlDataSource dataSource,
    IOptions<OperationsOptions> options,
    TimeProvider timeProvider,
    ILogger<CommitOutcomeResolver> logger)
{
    private static readonly TimeSpan FirstDelay = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Runs <paramref name="write"/>; when its outcome is unknown, settles it with <paramref name="settle"/> (see
    /// <see cref="SettleAsync{T}"/>). Any other failure propagates as it is.
    /// </summary>
    public async Task<T> RunAsync<T>(string what, Func<CancellationToken, Task<T>> write, Func<CancellationToken, Task<T>> settle,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(write);
        try
        {
            return await write(cancellationToken).ConfigureAwait(false);
        }
        catch (CommitOutcomeUnknownException unknown)
        {
            return await SettleAsync(what, settle, unknown, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Waits for the broken connection's server process to end, then runs <paramref name="settle"/> until it completes
    /// without a database failure. Throws <see cref="CommitOutcomeUnknownException"/> when the budget ends first, or when
    /// settling fails in a way that trying again cannot mend; <see cref="OperationCanceledException"/> when
    /// <paramref name="cancellationToken"/> fires.
    /// </summary>
    public async Task<T> SettleAsync<T>(string what, Func<CancellationToken, Task<T>> settle, CommitOutcomeUnknownException unknown,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(settle);
        ArgumentNullException.ThrowIfNull(unknown);
        var budget = options.Value.CommitResolutionTimeout;
        long started = timeProvider.GetTimestamp();
        LogUnknown(unknown.InnerException ?? unknown, what);
        using var withinBudget = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        withinBudget.CancelAfter(budget);
        bool backendGone = unknown.BackendProcessId is null;
        var delay = FirstDelay;
        while (true)
        {
            try
            {
                backendGone = backendGone || !await IsRunningAsync(unknown.BackendProcessId!.Value, withinBudget.Token).ConfigureAwait(false);
                if (backendGone)
                {
                    var settled = await settle(withinBudget.Token).ConfigureAwait(false);
                    LogSettled(what, timeProvider.GetElapsedTime(started));
                    return settled;
                }
            }
#pragma warning disable CA1031 // Whatever settling threw, the write's outcome is still unknown: that is what the caller must hear.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    throw new OperationCanceledException("The caller went away while the commit outcome was being settled.", ex, cancellationToken);
                }

                if (!MayPassIfTriedAgain(ex))
                {
                    LogSettlingFailed(ex, what);
                    throw new CommitOutcomeUnknownException($"The commit outcome of {what} could not be settled.", ex, unknown.BackendProcessId);
                }
            }

            if (withinBudget.IsCancellationRequested || timeProvider.GetElapsedTime(started) + delay >= budget)
            {
                LogStillUnknown(what, budget);
                throw new CommitOutcomeUnknownException($"The commit outcome of {what} is still unknown after {budget}.",
                    unknown.InnerException ?? unknown, unknown.BackendProcessId);
            }

            await Task.Delay(delay, timeProvider, withinBudget.Token).ContinueWith(static _ => { }, CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).ConfigureAwait(false);
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxDelay.Ticks));
        }
    }

    /// <summary>Records how a settled write came out: how many of its rows the first write had stored, how many were written again.</summary>
    public void ReportSettled(string what, int stored, int written) => LogSettledRows(what, stored, written);

    /// <summary>
    /// Connection trouble, a timeout or the budget's cancellation may pass; the server's own ERROR answer to a settling
    /// statement, or anything else, would come again.
    /// </summary>
    private static bool MayPassIfTriedAgain(Exception exception) => exception switch
    {
        PostgresException postgres => postgres.InvariantSeverity is "FATAL" or "PANIC",
        NpgsqlException or TimeoutException or OperationCanceledException => true,
        _ => false,
    };

    private async Task<bool> IsRunningAsync(int backendProcessId, CancellationToken cancellationToken)
    {
        const string Sql = "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = @pid AND pid <> pg_backend_pid())";
        await using var command = dataSource.CreateCommand(Sql);
        command.Parameters.Add(new NpgsqlParameter<int>("pid", backendProcessId));
        return (bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Commit outcome of {What} was unknown and is settled: {Stored} stored, {Written} written again")]
    private partial void LogSettledRows(string what, int stored, int written);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The connection failed after {What} was sent; settling whether it was committed")]
    private partial void LogUnknown(Exception exception, string what);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Settled the commit outcome of {What} after {Elapsed}")]
    private partial void LogSettled(string what, TimeSpan elapsed);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Commit outcome of {What} is still unknown after {Budget}; its callers are told so")]
    private partial void LogStillUnknown(string what, TimeSpan budget);

    [LoggerMessage(Level = LogLevel.Error, Message = "Commit outcome of {What} is still unknown: settling it failed; its callers are told so")]
    private partial void LogSettlingFailed(Exception exception, string what);
}
