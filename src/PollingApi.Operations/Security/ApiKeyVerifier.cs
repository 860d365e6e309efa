using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Security;

/// <summary>
/// Checks presented API keys against the stored hashes. What it reads (a key, or that there is none) is kept for
/// <see cref="CallerAuthenticationOptions.ApiKeyCacheDuration"/>, so a busy client costs the database one read per
/// period, and a revoked key stops working on every node within that period.
/// </summary>
internal sealed class ApiKeyVerifier : IDisposable
{
    private readonly ApiKeyStore _store;
    private readonly TimeSpan _cacheDuration;
    private readonly MemoryCache _cache = new(new MemoryCacheOptions { SizeLimit = 10_000 });

    public ApiKeyVerifier(ApiKeyStore store, IOptions<CallerAuthenticationOptions> options)
    {
        _store = store;
        _cacheDuration = options.Value.ApiKeyCacheDuration;
        Anonymous = options.Value.AllowAnonymous
            ? SignedIn(CallerClaims.Principal("Anonymous", options.Value.AnonymousTenant, options.Value.EffectiveAnonymousScopes, "anonymous"))
            : null;
    }

    /// <summary>Who a request without credentials is, when anonymous callers are allowed; null when they are not.</summary>
    public AuthenticateResult? Anonymous { get; }

    private static readonly AuthenticateResult NotAKey = AuthenticateResult.Fail("The API key is unknown or revoked.");

    private static AuthenticateResult SignedIn(ClaimsPrincipal caller) =>
        AuthenticateResult.Success(new AuthenticationTicket(caller, ApiKeyAuthenticationHandler.SchemeName));

    /// <summary>
    /// Who the key <paramref name="presented"/> signs in, or a failure when it is not an active key (unknown, revoked or
    /// malformed). The result is made once per read of the key and shared by the requests that present it meanwhile.
    /// </summary>
    public async ValueTask<AuthenticateResult> VerifyAsync(string? presented, CancellationToken cancellationToken)
    {
        if (!ApiKeySecret.HasKeyShape(presented))
        {
            return NotAKey;
        }

        // Looked up by the key as presented (it is in this process's memory for the request anyway): a request whose
        // key was read lately costs no hash.
        if (_cache.TryGetValue(presented!, out AuthenticateResult? verified))
        {
            return verified!;
        }

        var key = await _store.FindActiveAsync(ApiKeySecret.Hash(presented!), cancellationToken).ConfigureAwait(false);
        var result = key is null
            ? NotAKey
            : SignedIn(CallerClaims.Principal(ApiKeyAuthenticationHandler.SchemeName, key.Tenant, key.Scopes, $"key {key.Id}"));
        if (_cacheDuration > TimeSpan.Zero)
        {
            _cache.Set(presented!, result, new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = _cacheDuration });
        }

        return result;
    }

    public void Dispose() => _cache.Dispose();

}
