using System.Diagnostics;
using System.Globalization;

namespace PollingApi.Harness;

/// <summary>
/// One process's CPU times from <c>/proc/&lt;pid&gt;/stat</c>, in clock ticks: its parent, the time it used itself
/// (user + system) and the time its exited children used that it has reaped.
/// </summary>
public readonly record struct ProcessCpuTimes(int ParentPid, long OwnTicks, long ReapedChildrenTicks)
{
    private static readonly Lazy<long> ClockTicksPerSecond = new(ReadClockTicksPerSecond);

    /// <summary>The kernel's clock ticks per second (<c>getconf CLK_TCK</c>), the unit of the tick counts.</summary>
    public static long TicksPerSecond => ClockTicksPerSecond.Value;

    /// <summary>The time the process used itself (user + system).</summary>
    public TimeSpan Own => TimeSpan.FromSeconds(OwnTicks / (double)TicksPerSecond);

    /// <summary>Reads the CPU times of process <paramref name="pid"/>; throws <see cref="IOException"/> when it is gone.</summary>
    public static ProcessCpuTimes Read(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
        // The command name (field 2) is in parentheses and may hold spaces; the fields after it are plain.
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // fields[0] is field 3 (state): ppid is field 4, utime/stime fields 14/15, cutime/cstime fields 16/17.
        static long At(string[] f, int field) => long.Parse(f[field - 3], CultureInfo.InvariantCulture);
        return new ProcessCpuTimes((int)At(fields, 4), At(fields, 14) + At(fields, 15), At(fields, 16) + At(fields, 17));
    }

    /// <summary>Like <see cref="Read"/>, but null when the process is gone or not ours to read.</summary>
    public static ProcessCpuTimes? TryRead(int pid)
    {
        try
        {
            return Read(pid);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static long ReadClockTicksPerSecond()
    {
        try
        {
            var startInfo = new ProcessStartInfo("getconf", ["CLK_TCK"]) { UseShellExecute = false, RedirectStandardOutput = true };
            using var getconf = Process.Start(startInfo);
            string? output = getconf?.StandardOutput.ReadToEnd().Trim();
            getconf?.WaitForExit();
            return long.TryParse(output, NumberStyles.None, CultureInfo.InvariantCulture, out long ticks) && ticks > 0 ? ticks : 100;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // No getconf: Linux has used 100 ticks per second on every common architecture for decades.
            return 100;
        }
    }
}
