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


    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!Request.Headers.TryGetValue(HeaderName, out var values))
        {
            return verifier.Anonymous is { } anonymous && !Request.Headers.ContainsKey("Authorization")
                ? Success(anonymous)
                : AuthenticateResult.NoResult();
        }

        if (values.Count != 1)
        {
            return AuthenticateResult.Fail("Send one X-Api-Key header.");
        }

        var caller = await verifier.VerifyAsync(values[0], Context.RequestAborted).ConfigureAwait(false);
        return caller is null ? AuthenticateResult.Fail("The API key is unknown or revoked.") : Success(caller);
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
