using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace PollingApi.Operations.Security;

/// <summary>
/// Who a request is, from the first credential found in this order: the key in <c>X-Api-Key</c>; a key as a bearer
/// credential (<c>Authorization: Bearer pak_...</c>); a JWT bearer token (handed to the JwtBearer handler, when JWTs are
/// configured); else the anonymous development tenant when <see cref="CallerAuthenticationOptions.AllowAnonymous"/> is on.
/// A key read lately costs a dictionary lookup, and its result is shared (see <see cref="ApiKeyVerifier"/>).
/// </summary>
internal sealed class CallerAuthenticator(ApiKeyVerifier verifier, IOptions<CallerAuthenticationOptions> options)
{
    private static readonly AuthenticateResult NoCredentials = AuthenticateResult.NoResult();
    private static readonly AuthenticateResult OneKeyOnly = AuthenticateResult.Fail("Send one X-Api-Key header.");

    public async ValueTask<AuthenticateResult> AuthenticateAsync(HttpContext http)
    {
        var headers = http.Request.Headers;
        if (headers.TryGetValue(ApiKeyAuthenticationHandler.HeaderName, out var values))
        {
            return values.Count != 1 ? OneKeyOnly : await verifier.VerifyAsync(values[0], http.RequestAborted).ConfigureAwait(false);
        }

        // Without X-Api-Key, a key may come as a bearer credential: what scrapers and proxies that cannot set headers send.
        if (BearerApiKey(headers) is { } bearerKey)
        {
            return await verifier.VerifyAsync(bearerKey, http.RequestAborted).ConfigureAwait(false);
        }

        if (IsBearer(headers))
        {
            return await http.AuthenticateAsync(JwtBearerDefaults.AuthenticationScheme).ConfigureAwait(false);
        }

        return verifier.Anonymous is { } anonymous && !headers.ContainsKey("Authorization") ? anonymous : NoCredentials;
    }

    /// <summary>Says how to authenticate: the JwtBearer handler's challenge for a bearer request, else the key's (and Bearer, where accepted).</summary>
    public Task ChallengeAsync(HttpContext http)
    {
        if (IsBearer(http.Request.Headers))
        {
            return http.ChallengeAsync(JwtBearerDefaults.AuthenticationScheme);
        }

        var response = http.Response;
        response.StatusCode = StatusCodes.Status401Unauthorized;
        response.Headers.Append("WWW-Authenticate", $"ApiKey header=\"{ApiKeyAuthenticationHandler.HeaderName}\"");
        if (options.Value.JwtEnabled)
        {
            response.Headers.Append("WWW-Authenticate", "Bearer");
        }

        return Task.CompletedTask;
    }

    private static string? BearerApiKey(IHeaderDictionary headers) =>
        headers.Authorization is [{ } authorization]
        && authorization.StartsWith("Bearer " + ApiKeySecret.Prefix, StringComparison.OrdinalIgnoreCase)
            ? authorization["Bearer ".Length..]
            : null;

    private bool IsBearer(IHeaderDictionary headers) =>
        options.Value.JwtEnabled
        && headers.Authorization is [{ } authorization]
        && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase);
}
