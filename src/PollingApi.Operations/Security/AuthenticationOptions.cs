using Microsoft.Extensions.Options;

namespace PollingApi.Operations.Security;

/// <summary>How callers sign in: the <c>Authentication</c> configuration section.</summary>
internal sealed class CallerAuthenticationOptions
{
    public const string SectionName = "Authentication";

    /// <summary>
    /// Whether a request without credentials is let in as <see cref="AnonymousTenant"/> with the submit, read and manage
    /// scopes. For development only: off unless configured (appsettings.Development.json turns it on).
    /// </summary>
    public bool AllowAnonymous { get; set; }

    /// <summary>The tenant anonymous callers act as.</summary>
    public string AnonymousTenant { get; set; } = "dev";

    /// <summary>
    /// The scopes anonymous callers get: submit, read and manage unless configured (appsettings.Development.json adds
    /// <c>admin</c>, so the dashboard works without a key on a developer's machine).
    /// </summary>
    public string? AnonymousScopes { get; set; }

    /// <summary>The scopes of <see cref="AnonymousScopes"/> (space-separated, as in an OAuth scope claim), or the default.</summary>
    public IReadOnlyList<string> EffectiveAnonymousScopes => string.IsNullOrWhiteSpace(AnonymousScopes)
        ? [OperationScopes.Submit, OperationScopes.Read, OperationScopes.Manage]
        : AnonymousScopes.Split(' ', StringSplitOptions.RemoveEmptyEntries).Distinct(StringComparer.Ordinal).ToArray();

    /// <summary>How long a node trusts what it read about an API key: the most a revocation takes to reach every node.</summary>
    public TimeSpan ApiKeyCacheDuration { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>JWT bearer tokens, accepted when an authority and an audience are configured.</summary>
    public JwtSettings Jwt { get; set; } = new();

    public bool JwtEnabled => !string.IsNullOrWhiteSpace(Jwt.Authority) || !string.IsNullOrWhiteSpace(Jwt.Audience);
}

/// <summary>The <c>Authentication:Jwt</c> section.</summary>
internal sealed class JwtSettings
{
    /// <summary>The token issuer; its OpenID Connect metadata gives the signing keys.</summary>
    public string? Authority { get; set; }

    /// <summary>The audience tokens must be issued for.</summary>
    public string? Audience { get; set; }

    /// <summary>The claim that names the caller's tenant.</summary>
    public string TenantClaim { get; set; } = "tenant";

    /// <summary>The claim that lists the caller's scopes (space-separated, or one claim per scope).</summary>
    public string ScopeClaim { get; set; } = "scope";

    /// <summary>Whether the authority's metadata must be fetched over HTTPS.</summary>
    public bool RequireHttpsMetadata { get; set; } = true;
}

internal sealed class CallerAuthenticationOptionsValidator : IValidateOptions<CallerAuthenticationOptions>
{
    public ValidateOptionsResult Validate(string? name, CallerAuthenticationOptions options)
    {
        var failures = new List<string>();
        if (!CallerClaims.IsValidTenant(options.AnonymousTenant))
        {
            failures.Add($"Authentication:AnonymousTenant is '{options.AnonymousTenant}': a tenant is 1 to 64 letters, digits, '.', '_', ':' or '-'.");
        }

        if (options.EffectiveAnonymousScopes.Any(scope => !OperationScopes.All.Contains(scope, StringComparer.Ordinal)))
        {
            failures.Add($"Authentication:AnonymousScopes is '{string.Join(",", options.EffectiveAnonymousScopes)}': each must be one of {string.Join(", ", OperationScopes.All)}.");
        }

        if (options.ApiKeyCacheDuration < TimeSpan.Zero || options.ApiKeyCacheDuration > TimeSpan.FromMinutes(1))
        {
            failures.Add($"Authentication:ApiKeyCacheDuration is {options.ApiKeyCacheDuration}: it must be from 0 to 00:01:00 (revoked keys work that long).");
        }

        if (options.JwtEnabled && (string.IsNullOrWhiteSpace(options.Jwt.Authority) || string.IsNullOrWhiteSpace(options.Jwt.Audience)))
        {
            failures.Add("Authentication:Jwt needs both Authority and Audience (or neither, to accept API keys only).");
        }

        if (options.JwtEnabled && (string.IsNullOrWhiteSpace(options.Jwt.TenantClaim) || string.IsNullOrWhiteSpace(options.Jwt.ScopeClaim)))
        {
            failures.Add("Authentication:Jwt:TenantClaim and ScopeClaim must name claims.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
