using Microsoft.Extensions.Options;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Http;

/// <summary>
/// How long a poller should wait before asking again, in whole seconds: until a scheduled retry falls due,
/// otherwise the configured minimum; always within [<see cref="OperationsOptions.RetryAfterMin"/>,
/// <see cref="OperationsOptions.RetryAfterMax"/>], never 0.
/// </summary>
public sealed class RetryAfterPolicy(IOptions<OperationsOptions> options, TimeProvider timeProvider)
{
    public int SecondsFor(OperationRow row)
    {
        var settings = options.Value;
        var wait = settings.RetryAfterMin;
        if (row.Status == OperationStatus.Pending && row.Attempts > 0)
        {
            var untilDue = row.NextAttemptAt - timeProvider.GetUtcNow().UtcDateTime;
            if (untilDue > wait)
            {
                wait = untilDue;
            }
        }

        return Clamp(wait);
    }

    /// <summary>The advice for a caller told that the database is unavailable.</summary>
    public int SecondsWhenUnavailable() => Clamp(options.Value.RetryAfterMin * 5);

    private int Clamp(TimeSpan wait)
    {
        var settings = options.Value;
        double seconds = Math.Ceiling(Math.Clamp(wait.TotalSeconds, settings.RetryAfterMin.TotalSeconds, settings.RetryAfterMax.TotalSeconds));
        return Math.Max(1, (int)seconds);
    }
}
