namespace PollingApi.Diagnostics;

/// <summary>Sleep for a while, optionally failing first: for smoke tests, benchmarks and fault tests.</summary>
/// <param name="DurationMs">How long each attempt sleeps, 0 to 600000 milliseconds; a sleep of 1000 ms or more reports 50 % progress halfway.</param>
/// <param name="FailTimes">How many first attempts fail with a transient error before one succeeds, 0 to 100.</param>
/// <param name="FailPermanently">Fail the first attempt with a permanent error (no retries).</param>
/// <param name="FailUntil">Fail every attempt with a permanent error while the server's clock is before this instant (RFC 3339): a dependency that is down until then. A retry after it succeeds.</param>
public sealed record SleepRequest(int? DurationMs, int FailTimes = 0, bool FailPermanently = false, DateTimeOffset? FailUntil = null);
