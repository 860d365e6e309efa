using Microsoft.Extensions.Primitives;
using PollingApi.Operations;

namespace PollingApi;

/// <summary>
/// Answers a request for a host name the deployment does not serve (<c>AllowedHosts</c>, ';'-separated, '*.' wildcards)
/// with a <c>400 invalid-host</c> problem, so a forged <c>Host</c> never reaches a <c>Location</c> the API builds. Runs
/// after the forwarded headers, so it checks the host the links are built from. <c>*</c> (or nothing) allows any host.
/// </summary>
internal static class AllowedHostsFilter
{
    public const string InvalidHost = ProblemTypes.Prefix + "invalid-host";

    public static IApplicationBuilder UseAllowedHosts(this WebApplication app)
    {
        string[] hosts = app.Configuration["AllowedHosts"]?.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];
        if (hosts.Length == 0 || hosts.Contains("*"))
        {
            return app;
        }

        var patterns = hosts.Select(host => new StringSegment(host)).ToList();
        return app.Use(async (http, next) =>
        {
            if (HostString.MatchesAny(new StringSegment(http.Request.Host.Host), patterns))
            {
                await next(http);
                return;
            }

            http.Response.StatusCode = StatusCodes.Status400BadRequest;
            await http.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
            {
                HttpContext = http,
                ProblemDetails =
                {
                    Status = StatusCodes.Status400BadRequest,
                    Type = InvalidHost,
                    Title = "The host is not served here.",
                    Detail = "The Host header names a host this deployment does not serve (AllowedHosts).",
                },
            });
        });
    }
}
