using Npgsql;

namespace PollingApi.Operations.Storage;

/// <summary>Which exceptions mean "the database cannot be reached" (as opposed to a bug or a bad statement).</summary>
internal static class DatabaseFailure
{
    public static bool IsUnavailable(Exception exception) => exception switch
    {
        // Connection-level SQL states: 08 connection exception, 57P01-57P03 server shutting down or starting, 53300 too many connections.
        PostgresException pg => pg.SqlState.StartsWith("08", StringComparison.Ordinal)
                                || pg.SqlState is "57P01" or "57P02" or "57P03" or "53300",
        NpgsqlException => true,
        TimeoutException => true,
        _ => exception.InnerException is { } inner && IsUnavailable(inner),
    };
}
