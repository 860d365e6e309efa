using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace PollingApi.Operations.Security;

/// <summary>
/// Signs callers in by the key in <c>X-Api-Key</c>, hands an <c>Authorization: Bearer</c> request to the JWT bearer
/// handler when JWTs are configured, and signs a request without any credentials in as the anonymous development
/// tenant when <see cref="CallerAuthenticationOptions.AllowAnonymous"/> is on. It runs on every scoped request, so it
/// is the bare <see cref="IAuthenticationHandler"/> (no per-request options, logger or event set-up): a key read lately
/// costs a dictionary lookup, and its result is shared.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(ApiKeyVerifier verifier, IOptions<CallerAuthenticationOptions> callerOptions)
    : IAuthenticationHandler
{
    public const string SchemeName = "ApiKey";
    public const string HeaderName = "X-Api-Key";

    private static readonly AuthenticateResult NoKey = AuthenticateResult.NoResult();
    private static readonly AuthenticateResult OneKeyOnly = AuthenticateResult.Fail("Send one X-Api-Key header.");

    private HttpContext _context = null!;
    private Task<AuthenticateResult>? _result;

    public Task InitializeAsync(AuthenticationScheme scheme, HttpContext context)
    {
        _context = context;
        return Task.CompletedTask;
    }

    public Task<AuthenticateResult> AuthenticateAsync() => _result ??= AuthenticateOnceAsync();

    private async Task<AuthenticateResult> AuthenticateOnceAsync()
    {
        var headers = _context.Request.Headers;
        if (IsBearer(headers))
        {
            return await _context.AuthenticateAsync(JwtBearerDefaults.AuthenticationScheme).ConfigureAwait(false);
        }

        if (!headers.TryGetValue(HeaderName, out var values))
        {
            return verifier.Anonymous is { } anonymous && !headers.ContainsKey("Authorization") ? anonymous : NoKey;
        }

        return values.Count != 1 ? OneKeyOnly : await verifier.VerifyAsync(values[0], _context.RequestAborted).ConfigureAwait(false);
    }

    public Task ChallengeAsync(AuthenticationProperties? properties)
    {
        if (IsBearer(_context.Request.Headers))
        {
            return _context.ChallengeAsync(JwtBearerDefaults.AuthenticationScheme, properties);
        }

        var response = _context.Response;
        response.StatusCode = StatusCodes.Status401Unauthorized;
        response.Headers.Append("WWW-Authenticate", $"ApiKey header=\"{HeaderName}\"");
        if (callerOptions.Value.JwtEnabled)
        {
            response.Headers.Append("WWW-Authenticate", "Bearer");
        }

        return Task.CompletedTask;
    }

    public Task ForbidAsync(AuthenticationProperties? properties)
    {
        _context.Response.StatusCode = StatusCodes.Status403Forbidden;
        return Task.CompletedTask;
    }

    private bool IsBearer(IHeaderDictionary headers) =>
        callerOptions.Value.JwtEnabled
        && headers.Authorization is [{ } authorization]
        && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase);
}
