using Npgsql;

namespace PollingApi.Operations.Storage;

/// <summary>
/// A write's statement (or its transaction's COMMIT) was sent, and the connection failed before the server's
/// acknowledgement was read: the write may or may not be durable. Thrown by the store in place of the connection's
/// own exception, so that nobody answers "nothing was stored" for it. A failure before anything was sent (the
/// connection could not be opened, the pool was exhausted) stays an ordinary <see cref="NpgsqlException"/>.
/// </summary>
/// <remarks>
/// It is an <see cref="NpgsqlException"/>, so code that only needs "the database is in trouble" (retry loops, health
/// checks) treats it as before; code that answers callers catches it first and resolves the outcome
/// (<see cref="CommitOutcomeResolver"/>).
/// </remarks>
internal sealed class CommitOutcomeUnknownException : NpgsqlException
{
    public CommitOutcomeUnknownException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public CommitOutcomeUnknownException(string message, Exception innerException, int? backendProcessId)
        : base(message, innerException)
    {
        BackendProcessId = backendProcessId;
    }

    /// <summary>
    /// The server process of the connection that broke, when known. Until it has ended, a transaction it was committing
    /// may still commit; settling waits for it to be gone first.
    /// </summary>
    public int? BackendProcessId { get; }

    public CommitOutcomeUnknownException()
    {
    }

    public CommitOutcomeUnknownException(string message)
        : base(message)
    {
    }
}

/// <summary>Where a write failed decides what its caller may be told.</summary>
internal static class WriteFailure
{
    /// <summary>
    /// Whether an exception thrown after a write was sent on an open connection leaves its outcome unknown. The
    /// server's own ERROR answer means the statement (and its implicit transaction) did not commit. Anything else that
    /// ends the exchange: the stream broke, the read timed out, or the server sent a FATAL error (it can follow a
    /// commit that is already durable) leaves the outcome open.
    /// </summary>
    public static bool LeavesOutcomeUnknown(Exception exception) => exception switch
    {
        CommitOutcomeUnknownException => false, // Already classified.
        PostgresException postgres => postgres.InvariantSeverity is "FATAL" or "PANIC",
        NpgsqlException => true,
        TimeoutException => true,
        _ => false,
    };

    /// <summary>Runs <paramref name="write"/> on <paramref name="connection"/>, classifying a failure after the write was sent.</summary>
    public static async Task<T> SentOnAsync<T>(NpgsqlConnection connection, Func<NpgsqlConnection, Task<T>> write)
    {
        int backendProcessId = connection.ProcessID;
        try
        {
            return await write(connection).ConfigureAwait(false);
        }
        catch (Exception ex) when (LeavesOutcomeUnknown(ex))
        {
            if (ex is PostgresException { SqlState: PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown or PostgresErrorCodes.CannotConnectNow })
            {
                // The server is going down or restarted: the pool's idle connections are dead too, and each would cost the
                // next writes an unknown outcome. Dropped now, they fail where it is certain nothing was sent: opening.
                NpgsqlConnection.ClearPool(connection);
            }

            throw new CommitOutcomeUnknownException(
                "The connection failed after the write was sent; whether it was committed is unknown.", ex, backendProcessId);
        }
    }
}
