using System.Globalization;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using PollingApi.Operations.Security;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Http;

/// <summary>
/// Until the node has reached its database and applied the migrations (<see cref="DatabaseStartupGate"/>), answers the
/// requests that need the database with the <c>503 database-unavailable</c> an outage gets, <c>Retry-After</c> included:
/// nothing runs against a schema that is not migrated yet, and no operation is accepted before. Those are the requests to
/// an endpoint that needs a caller (a scope or an authorization policy): every one of them reads or writes the database,
/// starting with the caller's key. Health checks, metrics and the documents are served meanwhile.
/// </summary>
internal sealed class DatabaseStartupMiddleware(
    RequestDelegate next,
    DatabaseStartupGate startup,
    RetryAfterPolicy retryAfter,
    IProblemDetailsService problemDetails)
{
    public Task InvokeAsync(HttpContext http)
    {
        if (startup.IsOpen || !NeedsDatabase(http.GetEndpoint()))
        {
            return next(http);
        }

        return AnswerUnavailableAsync(http);
    }

    private static bool NeedsDatabase(Endpoint? endpoint) =>
        endpoint is not null
        && (endpoint.Metadata.GetMetadata<ScopeRequirement>() is not null || endpoint.Metadata.GetMetadata<IAuthorizeData>() is not null);

    private async Task AnswerUnavailableAsync(HttpContext http)
    {
        http.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        http.Response.Headers.RetryAfter = retryAfter.SecondsWhenUnavailable().ToString(CultureInfo.InvariantCulture);
        await problemDetails.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = http,
            ProblemDetails = DatabaseUnavailableExceptionHandler.NothingStoredProblem(),
        }).ConfigureAwait(false);
    }
}
