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
    }

    /// <summary>The active key <paramref name="presented"/> is, or null when it is not one (unknown, revoked or malformed).</summary>
    public async ValueTask<ApiKeyRow?> VerifyAsync(string? presented, CancellationToken cancellationToken)
    {
        if (!ApiKeySecret.HasKeyShape(presented))
        {
            return null;
        }

        byte[] hash = ApiKeySecret.Hash(presented!);
        string cacheKey = Convert.ToHexString(hash);
        if (_cache.TryGetValue(cacheKey, out Verified? verified))
        {
            return verified!.Key;
        }

        var key = await _store.FindActiveAsync(hash, cancellationToken).ConfigureAwait(false);
        if (_cacheDuration > TimeSpan.Zero)
        {
            _cache.Set(cacheKey, new Verified(key), new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = _cacheDuration });
        }

        return key;
    }

    public void Dispose() => _cache.Dispose();

    private sealed record Verified(ApiKeyRow? Key);
}
