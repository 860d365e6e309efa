using Microsoft.Extensions.Options;

namespace PollingApi.Operations.Worker;

/// <summary>
/// Exponential backoff with full jitter: the delay before retry n is uniform in
/// [0, min(<see cref="OperationsOptions.RetryMaxDelay"/>, <see cref="OperationsOptions.RetryBaseDelay"/> * 2^(n-1))).
/// </summary>
internal sealed class RetryBackoff(IOptions<OperationsOptions> options, Random random)
{
    public RetryBackoff(IOptions<OperationsOptions> options)
        : this(options, Random.Shared)
    {
    }

    /// <summary>The upper bound of the delay after the given failed attempt (1-based).</summary>
    public TimeSpan Cap(int failedAttempt)
    {
        var settings = options.Value;
        int exponent = Math.Clamp(failedAttempt - 1, 0, 30);
        double capTicks = Math.Min(settings.RetryMaxDelay.Ticks, settings.RetryBaseDelay.Ticks * Math.Pow(2, exponent));
        return TimeSpan.FromTicks((long)capTicks);
    }

    public TimeSpan Delay(int failedAttempt) => TimeSpan.FromTicks((long)(Cap(failedAttempt).Ticks * random.NextDouble()));
}
