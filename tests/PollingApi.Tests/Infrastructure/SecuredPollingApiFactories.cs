using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace PollingApi.Tests.Infrastructure;

/// <summary>A node that lets no anonymous caller in: every /v1 request needs a key. Keys are re-read every second.</summary>
public class SecuredPollingApiFactory : PollingApiFactory
{
    protected override IEnumerable<(string Key, string Value)> Settings =>
    [
        ("Authentication:AllowAnonymous", "false"),
        ("Authentication:ApiKeyCacheDuration", "00:00:01"),
        .. MoreSettings,
    ];

    protected virtual IEnumerable<(string Key, string Value)> MoreSettings => [];
}

/// <summary>A secured node with a tiny rate limit: 3 requests at once, then 1 per second, per tenant.</summary>
public sealed class RateLimitedPollingApiFactory : SecuredPollingApiFactory
{
    protected override IEnumerable<(string Key, string Value)> MoreSettings =>
        [("RateLimiting:PermitsPerSecond", "1"), ("RateLimiting:Burst", "3")];
}

/// <summary>A secured API-only node (nothing runs, so operations stay pending) with a quota of 2 unfinished operations per tenant.</summary>
public sealed class QuotaPollingApiFactory : SecuredPollingApiFactory
{
    protected override string Role => "Api";

    protected override IEnumerable<(string Key, string Value)> MoreSettings => [("Operations:MaxUnfinishedPerTenant", "2")];
}

/// <summary>The node as deployed: the Production environment and its appsettings.json, nothing from Development.</summary>
public sealed class ProductionPollingApiFactory : PollingApiFactory
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        base.ConfigureWebHost(builder);
        builder.UseEnvironment("Production");
    }
}

/// <summary>
/// A secured node that also accepts JWT bearer tokens. The issuer's metadata is given directly (no authority is
/// reachable here): tokens signed with <see cref="SigningKey"/> by <see cref="Issuer"/> for <see cref="Audience"/> validate.
/// </summary>
public sealed class JwtPollingApiFactory : SecuredPollingApiFactory
{
    public const string Issuer = "https://issuer.pollingapi.test/";
    public const string Audience = "pollingapi";

    public static SymmetricSecurityKey SigningKey { get; } = new(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));

    protected override IEnumerable<(string Key, string Value)> MoreSettings =>
    [
        ("Authentication:Jwt:Authority", Issuer),
        ("Authentication:Jwt:Audience", Audience),
        ("Authentication:Jwt:TenantClaim", "org"),
    ];

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        base.ConfigureWebHost(builder);
        builder.ConfigureTestServices(services => services.PostConfigure<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme, jwt =>
        {
            var configuration = new OpenIdConnectConfiguration { Issuer = Issuer };
            configuration.SigningKeys.Add(SigningKey);
            jwt.Configuration = configuration;
            jwt.ConfigurationManager = new StaticConfigurationManager<OpenIdConnectConfiguration>(configuration);
        }));
    }
}
