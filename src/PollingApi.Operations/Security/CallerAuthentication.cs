using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace PollingApi.Operations.Security;

/// <summary>
/// The authentication schemes: the API key handler (see <see cref="ApiKeyAuthenticationHandler"/>), which hands an
/// <c>Authorization: Bearer</c> request to the JWT bearer handler when JWTs are configured.
/// </summary>
internal static class CallerAuthentication
{
    public const string SchemeName = ApiKeyAuthenticationHandler.SchemeName;

    public static void AddSchemes(IServiceCollection services)
    {
        // No default authenticate scheme: a request is authenticated only where a scope policy asks for it (see
        // ScopePolicies), so health checks and the document never wait on a key lookup, nor fail with the database.
        services.AddTransient<ApiKeyAuthenticationHandler>();
        var authentication = services.AddAuthentication(options =>
        {
            options.AddScheme<ApiKeyAuthenticationHandler>(SchemeName, "API key (or bearer token)");
            options.DefaultChallengeScheme = SchemeName;
            options.DefaultForbidScheme = SchemeName;
        });

        // Configured even when JWT is off (it is then never forwarded to), so that the options can be read from configuration.
        authentication.AddJwtBearer();
        services.AddOptions<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme)
            .Configure<IOptions<CallerAuthenticationOptions>>((jwt, configured) => ConfigureJwt(jwt, configured.Value.Jwt));
    }

    private static void ConfigureJwt(JwtBearerOptions jwt, JwtSettings settings)
    {
        jwt.Authority = settings.Authority;
        jwt.Audience = settings.Audience;
        jwt.RequireHttpsMetadata = settings.RequireHttpsMetadata;
        // Claim names as the issuer wrote them: the tenant and scope claims are configured by those names.
        jwt.MapInboundClaims = false;
        jwt.Events = new JwtBearerEvents
        {
            OnTokenValidated = context =>
            {
                var token = context.Principal!;
                string? tenant = token.FindFirst(settings.TenantClaim)?.Value;
                if (!CallerClaims.IsValidTenant(tenant))
                {
                    context.Fail($"The token has no valid '{settings.TenantClaim}' claim naming a tenant.");
                    return Task.CompletedTask;
                }

                var scopes = token.FindAll(settings.ScopeClaim)
                    .SelectMany(claim => claim.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                    .Where(scope => OperationScopes.All.Contains(scope, StringComparer.Ordinal));
                string subject = token.FindFirst("sub")?.Value ?? "token";
                context.Principal = CallerClaims.Principal(JwtBearerDefaults.AuthenticationScheme, tenant!, scopes, subject);
                return Task.CompletedTask;
            },
        };
    }
}
