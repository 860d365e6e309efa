using System.Globalization;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Http;

/// <summary>
/// Turns "the database cannot be reached" into <c>503 Service Unavailable</c> with <c>Retry-After</c>, so a
/// caller retries instead of seeing a 500 (and never gets a <c>202</c> for a command that was not stored). The
/// plain <c>database-unavailable</c> answer says nothing was stored; a write whose commit outcome is unknown gets
/// <c>commit-outcome-unknown</c> instead.
/// </summary>
internal sealed partial class DatabaseUnavailableExceptionHandler(
    IProblemDetailsService problemDetails,
    RetryAfterPolicy retryAfter,
    ILogger<DatabaseUnavailableExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (!DatabaseFailure.IsUnavailable(exception) || httpContext.Response.HasStarted)
        {
            return false;
        }

        LogUnavailable(exception, httpContext.Request.Path);
        httpContext.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        httpContext.Response.Headers.RetryAfter = retryAfter.SecondsWhenUnavailable().ToString(CultureInfo.InvariantCulture);
        // The endpoints that write answer an unknown commit outcome themselves, naming the operation; this is the
        // answer for one that did not, so that no write whose outcome is unknown is ever reported as "nothing stored".
        bool outcomeUnknown = FindCommitOutcomeUnknown(exception) is not null;
        return await problemDetails.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            Exception = exception,
            ProblemDetails = outcomeUnknown
                ? new ProblemDetails
                {
                    Status = StatusCodes.Status503ServiceUnavailable,
                    Type = ProblemTypes.CommitOutcomeUnknown,
                    Title = "Whether the change was stored is not known yet.",
                    Detail = "The connection to the database failed after a change was sent, and whether it was committed could not be " +
                             "confirmed. Read the resource again once the service answers to see what was stored.",
                }
                : NothingStoredProblem(),
        }).ConfigureAwait(false);
    }

    /// <summary>The plain <c>database-unavailable</c> problem: the database was not reached, so nothing was stored or changed.</summary>
    internal static ProblemDetails NothingStoredProblem() => new()
    {
        Status = StatusCodes.Status503ServiceUnavailable,
        Type = ProblemTypes.DatabaseUnavailable,
        Title = "The service is temporarily unavailable.",
        Detail = "The operations database cannot be reached. Nothing was stored or changed; retry after the time in Retry-After.",
    };

    private static CommitOutcomeUnknownException? FindCommitOutcomeUnknown(Exception? exception) => exception switch
    {
        null => null,
        CommitOutcomeUnknownException unknown => unknown,
        _ => FindCommitOutcomeUnknown(exception.InnerException),
    };


    [LoggerMessage(Level = LogLevel.Warning, Message = "Database unavailable while serving {Path}")]
    private partial void LogUnavailable(Exception exception, string path);
}
