using System.Collections.Concurrent;
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
/// Limits each tenant's requests with a token bucket of its own, through ASP.NET Core's rate limiting middleware. It
/// runs after authorization, so a request to a scoped endpoint has a tenant; anything else (health, the document, an
/// unknown route) is not limited here. A refused request is answered <c>429 rate-limited</c> with <c>Retry-After</c>.
/// </summary>
internal static class TenantRateLimiting
{
    public static void Add(IServiceCollection services)
    {
        services.AddSingleton<TenantRateLimiter>();
        services.AddOptions<RateLimiterOptions>().Configure<TenantRateLimiter>((limiter, tenants) =>
        {
            limiter.GlobalLimiter = tenants;
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

/// <summary>
/// One <see cref="TokenBucketRateLimiter"/> per tenant, found without a lock: the framework's generic partitioned limiter
/// takes one lock across all partitions on every request and builds its partition anew each time, which cost the
/// cheapest requests (a status read) a measurable share of their time.
/// </summary>
internal sealed class TenantRateLimiter(IOptions<TenantRateLimitOptions> options) : PartitionedRateLimiter<HttpContext>
{
    private readonly TenantRateLimitOptions _settings = options.Value;
    private readonly ConcurrentDictionary<string, TokenBucketRateLimiter> _buckets = new(StringComparer.Ordinal);

    public override RateLimiterStatistics? GetStatistics(HttpContext resource) => BucketOf(resource)?.GetStatistics();

    protected override RateLimitLease AttemptAcquireCore(HttpContext resource, int permitCount) =>
        BucketOf(resource)?.AttemptAcquire(permitCount) ?? UnlimitedLease.Instance;

    protected override ValueTask<RateLimitLease> AcquireAsyncCore(HttpContext resource, int permitCount, CancellationToken cancellationToken) =>
        BucketOf(resource) is { } bucket ? bucket.AcquireAsync(permitCount, cancellationToken) : new(UnlimitedLease.Instance);

    private TokenBucketRateLimiter? BucketOf(HttpContext http) =>
        _settings.Enabled && http.User.FindFirst(CallerClaims.Tenant)?.Value is { } tenant
            ? _buckets.GetOrAdd(tenant, static (_, settings) => new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
            {
                TokenLimit = settings.Burst,
                TokensPerPeriod = settings.PermitsPerSecond,
                ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                QueueLimit = 0,
                AutoReplenishment = true,
            }), _settings)
            : null;

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var bucket in _buckets.Values)
            {
                bucket.Dispose();
            }
        }

        base.Dispose(disposing);
    }

    /// <summary>The lease of a request no bucket applies to.</summary>
    private sealed class UnlimitedLease : RateLimitLease
    {
        public static readonly UnlimitedLease Instance = new();

        public override bool IsAcquired => true;

        public override IEnumerable<string> MetadataNames => [];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = null;
            return false;
        }
    }
}
