using System.Diagnostics;
using PollingApi.Benchmarks.Infrastructure;

namespace PollingApi.Benchmarks.Load;

/// <summary>
/// When a load runs: a warm-up (not counted), then a measured window. Requests that start inside the window are
/// counted; when fewer than <see cref="MinimumCount"/> were, the window is stretched until there are that many or
/// <see cref="HardLimit"/> (from the window's start) has passed.
/// </summary>
internal sealed record LoadWindow(TimeSpan Warmup, TimeSpan Measure, int MinimumCount, TimeSpan HardLimit);

/// <summary>What a load measured.</summary>
internal sealed record LoadResult(
    int Clients,
    long Count,
    double ElapsedSeconds,
    LatencySummary Latency,
    long Errors,
    IReadOnlyList<string> ErrorSamples,
    long Fallbacks,
    CpuUsage Cpu)
{
    /// <summary>Counted requests (or operations) per second of the measured window.</summary>
    public double PerSecond => ElapsedSeconds > 0 ? Count / ElapsedSeconds : 0;
}

/// <summary>The outcome of one client step: null when it succeeded, else what went wrong.</summary>
internal readonly record struct StepOutcome(string? Error, bool UsedFallback = false)
{
    public static readonly StepOutcome Ok = new(null);
}

/// <summary>
/// A closed loop: each client repeats one step (a request, or submit-then-wait) as soon as its previous one ended,
/// so the offered load adapts to the server. Latencies are Stopwatch ticks kept per client in arrays, merged and
/// sorted at the end: percentiles are exact, not estimated.
/// </summary>
internal static class ClosedLoopLoad
{
    private const int MaxErrorSamples = 5;

    public static async Task<LoadResult> RunAsync(int clients, LoadWindow window, Func<int, long, CancellationToken, Task<StepOutcome>> step,
        CpuMeter cpu, CancellationToken cancellationToken)
    {
        long start = Stopwatch.GetTimestamp();
        long measureStart = start + Ticks(window.Warmup);
        long measureEnd = measureStart + Ticks(window.Measure);
        long hardEnd = measureStart + Ticks(window.HardLimit);
        long counted = 0;
        long errors = 0;
        long fallbacks = 0;
        var errorSamples = new List<string>();
        var latencies = new List<long>[clients];
        var lastCompletion = new long[clients];

        async Task ClientAsync(int client)
        {
            var samples = latencies[client] = new List<long>(4096);
            long sequence = 0;
            while (!cancellationToken.IsCancellationRequested)
            {
                long begin = Stopwatch.GetTimestamp();
                if (begin >= measureEnd && (Volatile.Read(ref counted) >= window.MinimumCount || begin >= hardEnd))
                {
                    return;
                }

                var outcome = await step(client, sequence++, cancellationToken);
                long end = Stopwatch.GetTimestamp();
                if (outcome.Error is not null)
                {
                    Interlocked.Increment(ref errors);
                    lock (errorSamples)
                    {
                        if (errorSamples.Count < MaxErrorSamples)
                        {
                            errorSamples.Add(outcome.Error);
                        }
                    }

                    continue;
                }

                if (begin >= measureStart)
                {
                    samples.Add(end - begin);
                    lastCompletion[client] = Math.Max(lastCompletion[client], end);
                    Interlocked.Increment(ref counted);
                    if (outcome.UsedFallback)
                    {
                        Interlocked.Increment(ref fallbacks);
                    }
                }
            }
        }

        var clientTasks = Enumerable.Range(0, clients).Select(client => Task.Run(() => ClientAsync(client), CancellationToken.None)).ToArray();
        var all = Task.WhenAll(clientTasks);

        // The CPU window starts with the measured window (unless the clients are all done before it).
        var untilMeasure = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), measureStart);
        if (untilMeasure > TimeSpan.Zero)
        {
            await Task.WhenAny(all, Task.Delay(untilMeasure, cancellationToken));
        }

        var cpuStart = cpu.Snapshot();
        await all;
        var cpuEnd = cpu.Snapshot();
        cancellationToken.ThrowIfCancellationRequested();

        long last = lastCompletion.Max();
        double elapsed = last > measureStart ? Stopwatch.GetElapsedTime(measureStart, last).TotalSeconds : 0;
        long[] merged = latencies.SelectMany(list => list ?? []).ToArray();
        return new LoadResult(clients, merged.Length, elapsed, LatencySummary.From(merged), errors, errorSamples, fallbacks,
            CpuMeter.Between(cpuStart, cpuEnd));
    }

    private static long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);
}

/// <summary>Exact percentiles (nearest rank) of a set of latencies, in milliseconds.</summary>
internal sealed record LatencySummary(long Count, double P50Ms, double P90Ms, double P99Ms, double MaxMs, double MeanMs)
{
    public static LatencySummary From(long[] stopwatchTicks)
    {
        if (stopwatchTicks.Length == 0)
        {
            return new LatencySummary(0, double.NaN, double.NaN, double.NaN, double.NaN, double.NaN);
        }

        Array.Sort(stopwatchTicks);
        return new LatencySummary(stopwatchTicks.Length,
            Milliseconds(NearestRank(stopwatchTicks, 0.50)),
            Milliseconds(NearestRank(stopwatchTicks, 0.90)),
            Milliseconds(NearestRank(stopwatchTicks, 0.99)),
            Milliseconds(stopwatchTicks[^1]),
            stopwatchTicks.Average(Milliseconds));
    }

    /// <summary>The smallest sample with at least <paramref name="quantile"/> of all samples at or below it.</summary>
    internal static long NearestRank(long[] sorted, double quantile)
    {
        int rank = (int)Math.Ceiling(quantile * sorted.Length);
        return sorted[Math.Clamp(rank, 1, sorted.Length) - 1];
    }

    private static double Milliseconds(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
}
