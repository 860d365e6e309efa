namespace PollingApi.Operations.Telemetry;

/// <summary>The names under which the engine publishes its metrics and traces, for a host's OpenTelemetry set-up.</summary>
public static class OperationsTelemetry
{
    /// <summary>The <see cref="System.Diagnostics.Metrics.Meter"/> of the engine's metrics (served as <c>pollingapi_*</c>).</summary>
    public const string MeterName = "PollingApi.Operations";

    /// <summary>The <see cref="System.Diagnostics.ActivitySource"/> of the engine's spans (one per attempt).</summary>
    public const string ActivitySourceName = "PollingApi.Operations";
}

/// <summary>How an attempt ended, as the <c>outcome</c> label says it.</summary>
internal static class AttemptOutcome
{
    public const string Succeeded = "succeeded";
    public const string TransientFailure = "transient_failure";
    public const string PermanentFailure = "permanent_failure";
    public const string Cancelled = "cancelled";
    public const string LeaseLost = "lease_lost";

    /// <summary>
    /// The attempt ran out of time: longer than its kind's attempt timeout (retried while attempts are left), or past a
    /// stopping node's drain time (the operation was released, the attempt not counted).
    /// </summary>
    public const string TimedOut = "timed_out";
}
