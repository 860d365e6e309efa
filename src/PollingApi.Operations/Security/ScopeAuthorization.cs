using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace PollingApi.Operations.Security;

/// <summary>
/// A request needs <see cref="Scope"/> (or, where <see cref="AdminSuffices"/>, the admin scope instead). As endpoint
/// metadata it is enforced by <see cref="ScopeAuthorizationMiddleware"/>; as a policy requirement, by the framework.
/// </summary>
internal sealed record ScopeRequirement(string Scope, bool AdminSuffices) : IAuthorizationRequirement
{
    /// <summary>Submitting needs its own scope; reading and managing also let an operator (admin) in.</summary>
    public static ScopeRequirement For(string scope) =>
        new(scope, AdminSuffices: scope is OperationScopes.Read or OperationScopes.Manage);

    public bool IsMetBy(System.Security.Claims.ClaimsPrincipal user) =>
        user.FindFirst(CallerClaims.Tenant) is not null
        && (CallerClaims.HasScope(user, Scope) || (AdminSuffices && CallerClaims.HasScope(user, OperationScopes.Admin)));
}

internal sealed class ScopeRequirementHandler : AuthorizationHandler<ScopeRequirement>
{
    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, ScopeRequirement requirement)
    {
        if (requirement.IsMetBy(context.User))
        {
            context.Succeed(requirement);
        }

        return Task.CompletedTask;
    }
}

/// <summary>
/// The policies, one per scope, for a host's endpoints that use <c>RequireAuthorization(OperationScopes.X)</c>; the
/// engine's own endpoints carry a <see cref="ScopeRequirement"/> that <see cref="ScopeAuthorizationMiddleware"/> checks.
/// </summary>
internal static class ScopePolicies
{
    public static void Add(AuthorizationOptions options)
    {
        foreach (string scope in OperationScopes.All)
        {
            options.AddPolicy(scope, policy => policy.AddAuthenticationSchemes(CallerAuthentication.SchemeName)
                .RequireAuthenticatedUser().AddRequirements(ScopeRequirement.For(scope)));
        }
    }
}

/// <summary>
/// Signs the caller in and checks the scope of every endpoint that carries a <see cref="ScopeRequirement"/>, in one step:
/// the framework's policy evaluation resolves an evaluator, an authorization service and its handlers and merges
/// principals on every request, a cost the cheapest requests (a status read) felt. Endpoints without the requirement
/// pass through untouched.
/// </summary>
internal sealed class ScopeAuthorizationMiddleware(RequestDelegate next, CallerAuthenticator authenticator)
{
    public async Task InvokeAsync(HttpContext http)
    {
        if (http.GetEndpoint()?.Metadata.GetMetadata<ScopeRequirement>() is not { } required)
        {
            await next(http).ConfigureAwait(false);
            return;
        }

        var result = await authenticator.AuthenticateAsync(http).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            await CallerProblems.UnauthorizedAsync(http, authenticator).ConfigureAwait(false);
            return;
        }

        var user = result.Principal;
        if (!required.IsMetBy(user))
        {
            await CallerProblems.ForbiddenAsync(http, required).ConfigureAwait(false);
            return;
        }

        http.User = user;
        await next(http).ConfigureAwait(false);
    }
}

/// <summary>The 401 and 403 answers, as problems.</summary>
internal static class CallerProblems
{
    public static async Task UnauthorizedAsync(HttpContext http, CallerAuthenticator authenticator)
    {
        await authenticator.ChallengeAsync(http).ConfigureAwait(false);
        bool sentCredentials = http.Request.Headers.ContainsKey(ApiKeyAuthenticationHandler.HeaderName)
                               || http.Request.Headers.ContainsKey("Authorization");
        await WriteAsync(http, StatusCodes.Status401Unauthorized, ProblemTypes.Unauthorized, "Authentication is required.",
            sentCredentials
                ? "The credentials are not valid: the API key is unknown or revoked, or the bearer token did not validate."
                : $"Send an API key in the {ApiKeyAuthenticationHandler.HeaderName} header (or a bearer token where one is accepted).")
            .ConfigureAwait(false);
    }

    public static Task ForbiddenAsync(HttpContext http, ScopeRequirement? missing) =>
        WriteAsync(http, StatusCodes.Status403Forbidden, ProblemTypes.Forbidden, "The credentials do not allow this request.",
            missing is null
                ? "The credentials do not allow this request."
                : $"This request needs the scope '{missing.Scope}'{(missing.AdminSuffices ? " (or admin)" : "")}, which the credentials do not have.");

    private static async Task WriteAsync(HttpContext http, int status, string type, string title, string detail)
    {
        http.Response.StatusCode = status;
        await http.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
        {
            HttpContext = http,
            ProblemDetails = { Status = status, Type = type, Title = title, Detail = detail },
        }).ConfigureAwait(false);
    }
}

/// <summary>
/// Answers a request the framework's authorization refused (a host endpoint with <c>RequireAuthorization</c>, such as an
/// admin-only <c>/metrics</c>) with the same problems as the engine's endpoints.
/// </summary>
internal sealed class ProblemAuthorizationResultHandler(CallerAuthenticator authenticator) : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler _default = new();

    public async Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (authorizeResult.Succeeded)
        {
            await _default.HandleAsync(next, context, policy, authorizeResult).ConfigureAwait(false);
            return;
        }

        if (authorizeResult.Challenged || context.User.FindFirst(CallerClaims.Tenant) is null)
        {
            await CallerProblems.UnauthorizedAsync(context, authenticator).ConfigureAwait(false);
            return;
        }

        await CallerProblems.ForbiddenAsync(context,
            authorizeResult.AuthorizationFailure?.FailedRequirements.OfType<ScopeRequirement>().FirstOrDefault()).ConfigureAwait(false);
    }
}
