using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Options;

namespace PollingApi.Operations.Http;

/// <summary>
/// Writes a problem as <c>application/problem+json</c> whatever the request's <c>Accept</c> says. The framework's writer
/// declines a request that accepts only, say, <c>text/html</c> (a browser), which left the status code pages with a
/// plain-text body and made writing a 401 or 429 throw. Registered after it, so it only answers what it declines; the
/// host's <see cref="ProblemDetailsOptions.CustomizeProblemDetails"/> applies here as well.
/// </summary>
internal sealed class JsonProblemDetailsWriter(IOptions<ProblemDetailsOptions> problemOptions, IOptions<JsonOptions> jsonOptions)
    : IProblemDetailsWriter
{
    public bool CanWrite(ProblemDetailsContext context) => true;

    public ValueTask WriteAsync(ProblemDetailsContext context)
    {
        var http = context.HttpContext;
        var problem = context.ProblemDetails;
        problem.Status ??= http.Response.StatusCode;
        problem.Title ??= ReasonPhrases.GetReasonPhrase(problem.Status.Value);
        problemOptions.Value.CustomizeProblemDetails?.Invoke(context);
        // As object: the runtime type is written, so a validation problem keeps its errors.
        return new ValueTask(http.Response.WriteAsJsonAsync<object>(problem, jsonOptions.Value.SerializerOptions,
            "application/problem+json", http.RequestAborted));
    }
}
