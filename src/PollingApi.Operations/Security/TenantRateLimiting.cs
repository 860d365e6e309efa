using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace PollingApi.Operations.Security;

/// <summary>The <c>RateLimiting</c> configuration section: a token bucket per tenant over every <c>/v1</c> request.</summary>
internal sealed class TenantRateLimitOptions
{
    public const string SectionName = "RateLimiting";

    public bool Enabled { get; set; } = true;

    /// <summary>Requests a tenant may make per second, sustained.</summary>
    public int PermitsPerSecond { get; set; } = 500;

    /// <summary>Requests a tenant may make at once after a quiet spell (the bucket's size).</summary>
    public int Burst { get; set; } = 1000;
}

internal sealed class TenantRateLimitOptionsValidator : IValidateOptions<TenantRateLimitOptions>
{
    public ValidateOptionsResult Validate(string? name, TenantRateLimitOptions options)
    {
        var failures = new List<string>();
        if (options.PermitsPerSecond < 1)
        {
            failures.Add($"RateLimiting:PermitsPerSecond is {options.PermitsPerSecond}: it must be at least 1 (set RateLimiting:Enabled to false for no limit).");
        }

        if (options.Burst < 1)
        {
            failures.Add($"RateLimiting:Burst is {options.Burst}: it must be at least 1.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

/// <summary>
/// Limits each tenant's <c>/v1</c> requests with a token bucket (ASP.NET Core's rate limiter). It runs after
/// authorization, so every request it sees on a scoped endpoint has a tenant; the rest (an unknown route) share a bucket
/// per client address. A refused request is answered
/// <c>429 rate-limited</c> with <c>Retry-After</c>.
/// </summary>
internal static class TenantRateLimiting
{
    public static void Add(IServiceCollection services)
    {
        services.AddOptions<RateLimiterOptions>().Configure<IOptions<TenantRateLimitOptions>>((limiter, configured) =>
        {
            var settings = configured.Value;
            limiter.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(http =>
            {
                if (!settings.Enabled || !http.Request.Path.StartsWithSegments("/v1", StringComparison.OrdinalIgnoreCase))
                {
                    return RateLimitPartition.GetNoLimiter("");
                }

                // A tenant id has no spaces, so it cannot collide with an address partition.
                string partition = http.User.FindFirst(CallerClaims.Tenant)?.Value ?? "address " + http.Connection.RemoteIpAddress;
                return RateLimitPartition.GetTokenBucketLimiter(partition, _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = settings.Burst,
                    TokensPerPeriod = settings.PermitsPerSecond,
                    ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                    QueueLimit = 0,
                    AutoReplenishment = true,
                });
            });
            limiter.OnRejected = RejectAsync;
        });
        services.AddRateLimiter(_ => { });
    }

    private static async ValueTask RejectAsync(OnRejectedContext rejected, CancellationToken cancellationToken)
    {
        var http = rejected.HttpContext;
        int seconds = rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter)
            ? Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds))
            : 1;
        http.Response.StatusCode = StatusCodes.Status429TooManyRequests;
        http.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        await http.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
        {
            HttpContext = http,
            ProblemDetails =
            {
                Status = StatusCodes.Status429TooManyRequests,
                Type = ProblemTypes.RateLimited,
                Title = "Too many requests.",
                Detail = $"The rate limit of this tenant is reached; retry after {seconds} s.",
            },
        }).ConfigureAwait(false);
    }
}
