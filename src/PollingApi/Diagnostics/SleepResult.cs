namespace PollingApi.Diagnostics;

/// <summary>What a finished sleep reports.</summary>
/// <param name="SleptMs">How long the successful attempt slept, in milliseconds.</param>
/// <param name="Attempt">The number of the attempt that succeeded.</param>
public sealed record SleepResult(int SleptMs, int Attempt);
