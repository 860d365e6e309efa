using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.AspNetCore.Http;

namespace PollingApi.Operations.Security;

/// <summary>A request needs <see cref="Scope"/> (or, where <see cref="AdminSuffices"/>, the admin scope instead).</summary>
internal sealed record ScopeRequirement(string Scope, bool AdminSuffices) : IAuthorizationRequirement;

internal sealed class ScopeRequirementHandler : AuthorizationHandler<ScopeRequirement>
{
    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, ScopeRequirement requirement)
    {
        var user = context.User;
        if (user.FindFirst(CallerClaims.Tenant) is not null
            && (CallerClaims.HasScope(user, requirement.Scope) || (requirement.AdminSuffices && CallerClaims.HasScope(user, OperationScopes.Admin))))
        {
            context.Succeed(requirement);
        }

        return Task.CompletedTask;
    }
}

/// <summary>The policies, one per scope: submitting needs its own scope; reading and managing also let an operator (admin) in.</summary>
internal static class ScopePolicies
{
    public static void Add(AuthorizationOptions options)
    {
        Add(options, OperationScopes.Submit, adminSuffices: false);
        Add(options, OperationScopes.Read, adminSuffices: true);
        Add(options, OperationScopes.Manage, adminSuffices: true);
        Add(options, OperationScopes.Admin, adminSuffices: false);
    }

    private static void Add(AuthorizationOptions options, string scope, bool adminSuffices) =>
        options.AddPolicy(scope, policy => policy.AddAuthenticationSchemes(CallerAuthentication.SchemeName)
            .RequireAuthenticatedUser().AddRequirements(new ScopeRequirement(scope, adminSuffices)));
}

/// <summary>
/// Answers a refused request with a problem: <c>401 unauthorized</c> (with the challenge's <c>WWW-Authenticate</c>) when
/// there are no valid credentials, <c>403 forbidden</c> naming the missing scope when there are.
/// </summary>
internal sealed class ProblemAuthorizationResultHandler(IProblemDetailsService problems) : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler _default = new();

    public async Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (authorizeResult.Succeeded)
        {
            await _default.HandleAsync(next, context, policy, authorizeResult).ConfigureAwait(false);
            return;
        }

        bool authenticated = context.User.FindFirst(CallerClaims.Tenant) is not null;
        if (authorizeResult.Challenged || !authenticated)
        {
            await context.ChallengeAsync().ConfigureAwait(false);
            bool sentCredentials = context.Request.Headers.ContainsKey(ApiKeyAuthenticationHandler.HeaderName)
                                   || context.Request.Headers.ContainsKey("Authorization");
            await WriteAsync(context, StatusCodes.Status401Unauthorized, ProblemTypes.Unauthorized, "Authentication is required.",
                sentCredentials
                    ? "The credentials are not valid: the API key is unknown or revoked, or the bearer token did not validate."
                    : $"Send an API key in the {ApiKeyAuthenticationHandler.HeaderName} header (or a bearer token where one is accepted).")
                .ConfigureAwait(false);
            return;
        }

        var missing = authorizeResult.AuthorizationFailure?.FailedRequirements.OfType<ScopeRequirement>().FirstOrDefault();
        context.Response.StatusCode = StatusCodes.Status403Forbidden;
        await WriteAsync(context, StatusCodes.Status403Forbidden, ProblemTypes.Forbidden, "The credentials do not allow this request.",
            missing is null
                ? "The credentials do not allow this request."
                : $"This request needs the scope '{missing.Scope}'{(missing.AdminSuffices ? " (or admin)" : "")}, which the credentials do not have.")
            .ConfigureAwait(false);
    }

    private async Task WriteAsync(HttpContext context, int status, string type, string title, string detail)
    {
        context.Response.StatusCode = status;
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = { Status = status, Type = type, Title = title, Detail = detail },
        }).ConfigureAwait(false);
    }
}
