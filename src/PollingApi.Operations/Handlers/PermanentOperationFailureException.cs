namespace PollingApi.Operations.Handlers;

/// <summary>
/// Thrown by a handler for a failure that retrying cannot fix. The operation ends <c>failed</c> at once,
/// and its <c>error</c> is a problem object built from <see cref="Type"/>, <see cref="Title"/> and
/// <see cref="Detail"/>: write them for the API's callers, they are shown as they are.
/// </summary>
public sealed class PermanentOperationFailureException : Exception
{
    /// <summary>Creates a permanent failure.</summary>
    /// <param name="type">A stable URI naming the kind of failure, e.g. <c>urn:pollingapi:problem:insufficient-funds</c>.</param>
    /// <param name="title">A short, human-readable summary of the kind of failure.</param>
    /// <param name="detail">What went wrong with this operation, safe to show to the caller.</param>
    public PermanentOperationFailureException(string type, string title, string? detail = null)
        : base(title)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(type);
        ArgumentException.ThrowIfNullOrWhiteSpace(title);
        Type = type;
        Title = title;
        Detail = detail;
    }

    public PermanentOperationFailureException()
        : this(ProblemTypes.HandlerFailed, "The operation failed.")
    {
    }

    public PermanentOperationFailureException(string message)
        : this(ProblemTypes.HandlerFailed, message)
    {
    }

    public PermanentOperationFailureException(string message, Exception innerException)
        : base(message, innerException)
    {
        Type = ProblemTypes.HandlerFailed;
        Title = message;
    }

    /// <summary>A stable URI naming the kind of failure.</summary>
    public string Type { get; }

    /// <summary>A short summary of the kind of failure.</summary>
    public string Title { get; }

    /// <summary>What went wrong with this operation.</summary>
    public string? Detail { get; }
}
