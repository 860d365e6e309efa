namespace PollingApi.Operations.Handlers;

/// <summary>
/// Thrown by a handler for a transient failure whose cause says when to try again (a receiver's <c>Retry-After</c>, a
/// rate limit's reset): the next attempt is scheduled after <see cref="RetryAfter"/> instead of the usual backoff
/// (at most <see cref="MaxRetryAfter"/>, an hour). Like any transient failure it uses an attempt, and when the
/// attempts are used up the operation fails.
/// </summary>
public sealed class RetryOperationLaterException : Exception
{
    /// <summary>The longest wait a handler can ask for.</summary>
    public static readonly TimeSpan MaxRetryAfter = TimeSpan.FromHours(1);

    /// <summary>Creates the failure.</summary>
    /// <param name="retryAfter">How long to wait before the next attempt.</param>
    /// <param name="message">What went wrong (logged, never shown to callers).</param>
    public RetryOperationLaterException(TimeSpan retryAfter, string message)
        : base(message)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(retryAfter, TimeSpan.Zero);
        RetryAfter = retryAfter;
    }

    public RetryOperationLaterException()
        : this(TimeSpan.Zero, "The operation asked to be retried later.")
    {
    }

    public RetryOperationLaterException(string message)
        : this(TimeSpan.Zero, message)
    {
    }

    public RetryOperationLaterException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>How long to wait before the next attempt.</summary>
    public TimeSpan RetryAfter { get; }
}
