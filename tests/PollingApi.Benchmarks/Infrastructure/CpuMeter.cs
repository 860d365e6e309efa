using System.Diagnostics;
using System.Globalization;
using PollingApi.Harness;

namespace PollingApi.Benchmarks.Infrastructure;

/// <summary>CPU time used during a window, in seconds, by each party on the machine.</summary>
internal sealed record CpuUsage(double WallSeconds, double Api, double Postgres, double Driver, double DriverChildren, double Machine)
{
    /// <summary>What the machine spent on processes other than ours (other people's builds, the kernel's own work).</summary>
    public double Others => Math.Max(0, Machine - Api - Postgres - Driver - DriverChildren);

    /// <summary>A share of one core in percent, as <c>top</c> shows it (up to 100 × cores).</summary>
    public double Percent(double cpuSeconds) => WallSeconds > 0 ? 100 * cpuSeconds / WallSeconds : 0;
}

/// <summary>
/// Reads CPU time from <c>/proc</c>: the API process, every process of our PostgreSQL cluster (the postmaster,
/// found by its port, and its children), this driver and its reaped children (pgbench), and the whole machine.
/// Two snapshots make a <see cref="CpuUsage"/>.
/// </summary>
internal sealed class CpuMeter(int postgresPort)
{
    private int? _postmasterPid;

    /// <summary>The API process to account for; null while none runs.</summary>
    public int? ApiPid { get; set; }

    public CpuSnapshot Snapshot()
    {
        long postgres = 0;
        _postmasterPid ??= FindPostmaster(postgresPort);
        if (_postmasterPid is { } postmaster)
        {
            // The postmaster's own time plus what it reaped from exited backends, plus every live child's time.
            postgres = ProcessCpuTimes.TryRead(postmaster) is { } stat ? stat.OwnTicks + stat.ReapedChildrenTicks : 0;
            foreach (int pid in ProcessIds())
            {
                if (pid != postmaster && ProcessCpuTimes.TryRead(pid) is { } child && child.ParentPid == postmaster)
                {
                    postgres += child.OwnTicks;
                }
            }
        }

        long api = ApiPid is { } apiPid && ProcessCpuTimes.TryRead(apiPid) is { } apiStat ? apiStat.OwnTicks : 0;
        var self = ProcessCpuTimes.TryRead(Environment.ProcessId);
        return new CpuSnapshot(Stopwatch.GetTimestamp(), api, postgres, self?.OwnTicks ?? 0, self?.ReapedChildrenTicks ?? 0, ReadMachineBusy());
    }

    public static CpuUsage Between(CpuSnapshot start, CpuSnapshot end) => new(
        Stopwatch.GetElapsedTime(start.Timestamp, end.Timestamp).TotalSeconds,
        Seconds(end.Api - start.Api),
        Seconds(end.Postgres - start.Postgres),
        Seconds(end.Driver - start.Driver),
        Seconds(end.DriverChildren - start.DriverChildren),
        Seconds(end.Machine - start.Machine));

    private static double Seconds(long ticks) => Math.Max(0, ticks) / (double)ProcessCpuTimes.TicksPerSecond;

    /// <summary>The postmaster of our cluster: the <c>postgres</c> process started with <c>-p &lt;port&gt;</c>.</summary>
    private static int? FindPostmaster(int port)
    {
        string portText = port.ToString(CultureInfo.InvariantCulture);
        foreach (int pid in ProcessIds())
        {
            string[] arguments;
            try
            {
                arguments = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0');
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            if (arguments.Length > 2 && Path.GetFileName(arguments[0]) == "postgres")
            {
                for (int i = 0; i + 1 < arguments.Length; i++)
                {
                    if (arguments[i] == "-p" && arguments[i + 1] == portText)
                    {
                        return pid;
                    }
                }
            }
        }

        return null;
    }

    private static IEnumerable<int> ProcessIds()
    {
        foreach (string directory in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
            {
                yield return pid;
            }
        }
    }

    /// <summary>Busy time of all cores: everything in the first line of <c>/proc/stat</c> but idle and iowait.</summary>
    private static long ReadMachineBusy()
    {
        string line = File.ReadLines("/proc/stat").First();
        long[] values = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8)
            .Select(v => long.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        // user nice system idle iowait irq softirq steal
        return values.Sum() - values[3] - values[4];
    }
}

/// <summary>Cumulative CPU ticks at one moment.</summary>
internal readonly record struct CpuSnapshot(long Timestamp, long Api, long Postgres, long Driver, long DriverChildren, long Machine);
