using System.Security.Claims;
using System.Text.RegularExpressions;
using PollingApi.Operations.Model;

namespace PollingApi.Operations.Security;

/// <summary>
/// The claims every way of signing in (an API key, a JWT, an anonymous development caller) reduces to: one tenant and
/// the scopes granted. Everything after authentication reads only these.
/// </summary>
internal static partial class CallerClaims
{
    public const string Tenant = "pollingapi:tenant";
    public const string Scope = "pollingapi:scope";

    /// <summary>A tenant id: 1 to 64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit.</summary>
    public static bool IsValidTenant(string? tenant) => tenant is not null && TenantPattern().IsMatch(tenant);

    public static ClaimsPrincipal Principal(string authenticationType, string tenant, IEnumerable<string> scopes, string name) =>
        new(Identity(authenticationType, tenant, scopes, name));

    public static ClaimsIdentity Identity(string authenticationType, string tenant, IEnumerable<string> scopes, string name)
    {
        var claims = new List<Claim> { new(ClaimTypes.Name, name), new(Tenant, tenant) };
        claims.AddRange(scopes.Distinct(StringComparer.Ordinal).Select(scope => new Claim(Scope, scope)));
        return new ClaimsIdentity(claims, authenticationType, ClaimTypes.Name, ClaimTypes.Role);
    }

    public static bool HasScope(ClaimsPrincipal user, string scope) => user.HasClaim(Scope, scope);

    /// <summary>The caller a request was authorized as. Only called behind an authorization policy, which needs a tenant.</summary>
    public static OperationCaller Caller(ClaimsPrincipal user) =>
        user.FindFirst(Tenant)?.Value is { } tenant
            ? new OperationCaller(tenant, SeesAllTenants: HasScope(user, OperationScopes.Admin))
            : throw new InvalidOperationException("The request was not authorized as a tenant: map the endpoint with a scope policy.");

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", RegexOptions.CultureInvariant)]
    private static partial Regex TenantPattern();
}
