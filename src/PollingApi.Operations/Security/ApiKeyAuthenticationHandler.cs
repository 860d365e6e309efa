using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;

namespace PollingApi.Operations.Security;

/// <summary>
/// The authentication scheme behind the framework's authorization (a host endpoint with
/// <c>RequireAuthorization(OperationScopes.X)</c>): a bare <see cref="IAuthenticationHandler"/> over
/// <see cref="CallerAuthenticator"/>, which the engine's own endpoints use directly.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(CallerAuthenticator authenticator) : IAuthenticationHandler
{
    public const string SchemeName = "ApiKey";
    public const string HeaderName = "X-Api-Key";

    private HttpContext _context = null!;
    private Task<AuthenticateResult>? _result;

    public Task InitializeAsync(AuthenticationScheme scheme, HttpContext context)
    {
        _context = context;
        return Task.CompletedTask;
    }

    public Task<AuthenticateResult> AuthenticateAsync() => _result ??= authenticator.AuthenticateAsync(_context).AsTask();

    public Task ChallengeAsync(AuthenticationProperties? properties) => authenticator.ChallengeAsync(_context);

    public Task ForbidAsync(AuthenticationProperties? properties)
    {
        _context.Response.StatusCode = StatusCodes.Status403Forbidden;
        return Task.CompletedTask;
    }
}
