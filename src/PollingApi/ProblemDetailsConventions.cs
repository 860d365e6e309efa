using System.Diagnostics;
using Microsoft.AspNetCore.Http.Features;
using PollingApi.Operations;

namespace PollingApi;

/// <summary>
/// One error shape everywhere: every problem has a stable <c>type</c>, a <c>detail</c>, its <c>instance</c>
/// (the request path, a URI reference as RFC 9457 asks) and a <c>traceId</c>. Answers the framework makes
/// itself (unknown route, wrong method, unreadable request, unhandled error) get the project's types too.
/// </summary>
internal static class ProblemDetailsConventions
{
    private const string FrameworkTypePrefix = "https://tools.ietf.org/";

    public static void Configure(ProblemDetailsOptions options) =>
        options.CustomizeProblemDetails = context =>
        {
            var http = context.HttpContext;
            var problem = context.ProblemDetails;
            problem.Instance ??= $"{http.Request.PathBase}{http.Request.Path}";
            problem.Extensions["traceId"] =
                Activity.Current?.Id ?? http.Features.Get<IHttpActivityFeature>()?.Activity.Id ?? http.TraceIdentifier;
            // Exception text never reaches a caller, whatever the environment.
            problem.Extensions.Remove("exception");

            if (problem.Type is null || problem.Type.StartsWith(FrameworkTypePrefix, StringComparison.Ordinal))
            {
                var (type, detail) = FrameworkProblem(problem.Status, http.Request);
                problem.Type = type ?? problem.Type;
                problem.Detail ??= detail;
            }
        };

    private static (string? Type, string? Detail) FrameworkProblem(int? status, HttpRequest request) => status switch
    {
        StatusCodes.Status400BadRequest => (ProblemTypes.BadRequest, "The request could not be read."),
        StatusCodes.Status404NotFound => (ProblemTypes.RouteNotFound, $"There is no resource at {request.Path}."),
        StatusCodes.Status405MethodNotAllowed => (ProblemTypes.MethodNotAllowed,
            $"{request.Method} is not allowed on {request.Path}; the Allow header lists the methods that are."),
        StatusCodes.Status413PayloadTooLarge => (ProblemTypes.PayloadTooLarge, "The request body is too large."),
        StatusCodes.Status415UnsupportedMediaType => (ProblemTypes.UnsupportedMediaType,
            "Send the request body as application/json."),
        StatusCodes.Status500InternalServerError => (ProblemTypes.InternalError,
            "The server failed to handle the request; the traceId identifies it in the server's logs."),
        _ => (null, null),
    };
}
