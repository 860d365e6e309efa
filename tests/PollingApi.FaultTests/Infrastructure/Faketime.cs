namespace PollingApi.FaultTests.Infrastructure;

/// <summary>
/// Debian's libfaketime (<c>apt-get install faketime</c>), preloaded into a node so that its wall clock is off by a fixed
/// amount: a machine whose clock is wrong, as a machine without NTP drifts.
/// </summary>
/// <remarks>
/// Only the wall clock (<c>CLOCK_REALTIME</c>: <c>DateTime.UtcNow</c>, <c>TimeProvider.System.GetUtcNow()</c>) is moved:
/// <c>FAKETIME_DONT_FAKE_MONOTONIC=1</c> leaves <c>CLOCK_MONOTONIC</c> alone. A machine with a wrong clock has a true
/// monotonic clock (it counts from boot and is never compared across machines), and .NET's timers, <c>Task.Delay</c>,
/// <c>Stopwatch</c> and its thread pool's timed waits all run on it; faked, it jumps to a wall-clock-like value and
/// libfaketime has to rewrite every timed wait of the runtime's threads, which tests libfaketime rather than the engine.
/// <c>FAKETIME_FORCE_MONOTONIC_FIX=0</c> turns off a workaround libfaketime enables by itself on glibc: with it, every
/// timed wait of the runtime (<c>Monitor.Wait</c>, <c>ManualResetEventSlim.Wait</c>, <c>Thread.Sleep</c>) returns at once,
/// whatever its timeout, so a synchronous socket read (DbUp opens its connections synchronously) times out at once too
/// and the node cannot even migrate. The multi-threaded variant of the library (<c>libfaketimeMT</c>) is the one for a
/// process with many threads.
/// </remarks>
internal static class Faketime
{
    private const string Library = "libfaketimeMT.so.1";

    /// <summary>The library's path, or null when the faketime package is not installed.</summary>
    public static string? LibraryPath { get; } = Find();

    /// <summary>The environment that runs a node with its wall clock <paramref name="offset"/> off (whole seconds).</summary>
    public static IReadOnlyDictionary<string, string> Environment(TimeSpan offset)
    {
        string path = LibraryPath ?? throw new InvalidOperationException(
            $"{Library} was not found under /usr/lib/*/faketime: install Debian's faketime package (apt-get install faketime).");
        long seconds = (long)offset.TotalSeconds;
        return new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["LD_PRELOAD"] = path,
            ["FAKETIME"] = (seconds >= 0 ? "+" : "-") + Math.Abs(seconds).ToString(System.Globalization.CultureInfo.InvariantCulture) + "s",
            ["FAKETIME_DONT_FAKE_MONOTONIC"] = "1",
            ["FAKETIME_FORCE_MONOTONIC_FIX"] = "0",
        };
    }

    private static string? Find()
    {
        if (!Directory.Exists("/usr/lib"))
        {
            return null;
        }

        return Directory.EnumerateDirectories("/usr/lib")
            .Select(directory => Path.Combine(directory, "faketime", Library))
            .Append(Path.Combine("/usr/lib/faketime", Library))
            .FirstOrDefault(File.Exists);
    }
}
