namespace PollingApi.Operations.Lifecycle;

/// <summary>Waits whose running out is a normal end, not an error: a long-poll's wait, an event stream's heartbeat.</summary>
internal static class TimedWaits
{
    /// <summary>
    /// Waits for <paramref name="task"/> for at most <paramref name="timeout"/>: true when it completed in time, false
    /// when the time ran out; an <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> is
    /// cancelled. Running out is returned, not thrown: 10,000 long-polls that end together would otherwise throw and
    /// catch 10,000 <see cref="TimeoutException"/>s.
    /// </summary>
    public static async Task<bool> CompletesWithinAsync(this Task task, TimeSpan timeout, TimeProvider timeProvider,
        CancellationToken cancellationToken)
    {
        var waiting = task.WaitAsync(timeout, timeProvider, cancellationToken);
        await waiting.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (waiting.IsFaulted && waiting.Exception.InnerException is TimeoutException)
        {
            return false;
        }

        // Completed in time, or cancelled (or faulted) as before: awaiting it again returns or throws that.
        await waiting.ConfigureAwait(false);
        return true;
    }
}
