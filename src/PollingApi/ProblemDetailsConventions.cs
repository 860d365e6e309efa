using System.Diagnostics;
using Microsoft.AspNetCore.Http.Features;

namespace PollingApi;

/// <summary>One error shape everywhere: every problem carries its <c>instance</c> and a <c>traceId</c>.</summary>
internal static class ProblemDetailsConventions
{
    public static void Configure(ProblemDetailsOptions options) =>
        options.CustomizeProblemDetails = context =>
        {
            var http = context.HttpContext;
            context.ProblemDetails.Instance ??= $"{http.Request.Method} {http.Request.Path}";
            context.ProblemDetails.Extensions["traceId"] =
                Activity.Current?.Id ?? http.Features.Get<IHttpActivityFeature>()?.Activity.Id ?? http.TraceIdentifier;
            // Exception text never reaches a caller, whatever the environment.
            context.ProblemDetails.Extensions.Remove("exception");
        };
}
