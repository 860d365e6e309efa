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

    /// <summary>The node stopped and its drain time ran out before the handler finished; the operation was released.</summary>
    public const string TimedOut = "timed_out";
}
