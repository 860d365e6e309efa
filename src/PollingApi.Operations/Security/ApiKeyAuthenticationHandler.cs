using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace PollingApi.Operations.Security;

/// <summary>
/// Signs callers in by the key in <c>X-Api-Key</c>; a request without any credentials is signed in as the anonymous
/// development tenant when <see cref="CallerAuthenticationOptions.AllowAnonymous"/> is on.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions,
    ILoggerFactory logger,
    UrlEncoder encoder,
    ApiKeyVerifier verifier,
    IOptions<CallerAuthenticationOptions> callerOptions)
    : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string HeaderName = "X-Api-Key";

    /// <summary>The scopes of an anonymous development caller: everything but admin.</summary>
    internal static readonly string[] AnonymousScopes = [OperationScopes.Submit, OperationScopes.Read, OperationScopes.Manage];

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!Request.Headers.TryGetValue(HeaderName, out var values))
        {
            var options = callerOptions.Value;
            return options.AllowAnonymous && !Request.Headers.ContainsKey("Authorization")
                ? Success(CallerClaims.Principal("Anonymous", options.AnonymousTenant, AnonymousScopes, "anonymous"))
                : AuthenticateResult.NoResult();
        }

        if (values.Count != 1)
        {
            return AuthenticateResult.Fail("Send one X-Api-Key header.");
        }

        var key = await verifier.VerifyAsync(values[0], Context.RequestAborted).ConfigureAwait(false);
        return key is null
            ? AuthenticateResult.Fail("The API key is unknown or revoked.")
            : Success(CallerClaims.Principal(SchemeName, key.Tenant, key.Scopes, $"key {key.Id}"));
    }

    private AuthenticateResult Success(System.Security.Claims.ClaimsPrincipal principal) =>
        AuthenticateResult.Success(new AuthenticationTicket(principal, Scheme.Name));

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.Append("WWW-Authenticate", $"ApiKey header=\"{HeaderName}\"");
        if (callerOptions.Value.JwtEnabled)
        {
            Response.Headers.Append("WWW-Authenticate", "Bearer");
        }

        return Task.CompletedTask;
    }
}
