using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace PollingApi.FaultTests.Infrastructure;

/// <summary>What a node process does, as <c>Operations:Role</c> spells it.</summary>
internal enum NodeRole
{
    All,
    Api,
    Worker,
}

/// <summary>
/// One PollingApi process (<c>dotnet PollingApi.dll</c>) listening on a free loopback port, its standard output
/// and error copied to files in the run folder. It can be killed (SIGKILL) or asked to stop (SIGTERM).
/// </summary>
internal sealed class NodeProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Task _copyOutput;
    private readonly Task _copyError;

    private NodeProcess(string nodeId, NodeRole role, Uri baseAddress, Process process, string stdoutPath, string stderrPath,
        Task copyOutput, Task copyError)
    {
        NodeId = nodeId;
        Role = role;
        BaseAddress = baseAddress;
        _process = process;
        StdoutPath = stdoutPath;
        StderrPath = stderrPath;
        _copyOutput = copyOutput;
        _copyError = copyError;
        Pid = process.Id;
    }

    /// <summary>The node's <c>Operations:NodeId</c>, which is also its name in the run folder.</summary>
    public string NodeId { get; }

    public NodeRole Role { get; }

    public Uri BaseAddress { get; }

    public int Pid { get; }

    public string StdoutPath { get; }

    public string StderrPath { get; }

    public bool HasExited => _process.HasExited;

    public int? ExitCode => _process.HasExited ? _process.ExitCode : null;

    public static NodeProcess Start(NodeLaunch launch, string nodeId, NodeRole role)
    {
        int port = FreeLoopbackPort();
        var baseAddress = new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/");
        var startInfo = new ProcessStartInfo(launch.DotnetHost)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = Path.GetDirectoryName(launch.ApiDll)!,
        };
        startInfo.ArgumentList.Add(launch.ApiDll);
        startInfo.ArgumentList.Add("--urls");
        startInfo.ArgumentList.Add(baseAddress.GetLeftPart(UriPartial.Authority));

        var environment = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["ConnectionStrings__Operations"] = launch.ConnectionString,
            ["Operations__Role"] = role.ToString(),
            ["Operations__NodeId"] = nodeId,
            ["Diagnostics__Enabled"] = "true",
            ["Logging__LogLevel__Default"] = "Warning",
        };
        foreach (var (name, value) in launch.Timings)
        {
            environment[name] = value;
        }

        foreach (var (name, value) in environment)
        {
            startInfo.Environment[name] = value;
        }

        string stdoutPath = Path.Combine(launch.RunDirectory, nodeId + ".stdout.log");
        string stderrPath = Path.Combine(launch.RunDirectory, nodeId + ".stderr.log");
        var process = Process.Start(startInfo) ?? throw new InvalidOperationException($"Could not start {launch.DotnetHost}.");
        process.StandardInput.Close();
        return new NodeProcess(nodeId, role, baseAddress, process, stdoutPath, stderrPath,
            CopyToFileAsync(process.StandardOutput.BaseStream, stdoutPath),
            CopyToFileAsync(process.StandardError.BaseStream, stderrPath));
    }

    /// <summary>SIGKILL: the process dies at once, holding whatever leases it had.</summary>
    public void Kill()
    {
        try
        {
            _process.Kill(entireProcessTree: false);
        }
        catch (InvalidOperationException)
        {
            // It has exited already.
        }
    }

    /// <summary>SIGTERM: the host's graceful shutdown.</summary>
    public async Task TerminateAsync(CancellationToken cancellationToken)
    {
        var startInfo = new ProcessStartInfo("kill") { UseShellExecute = false, RedirectStandardError = true };
        startInfo.ArgumentList.Add("-TERM");
        startInfo.ArgumentList.Add(Pid.ToString(CultureInfo.InvariantCulture));
        using var kill = Process.Start(startInfo) ?? throw new InvalidOperationException("Could not start kill.");
        string error = await kill.StandardError.ReadToEndAsync(cancellationToken);
        await kill.WaitForExitAsync(cancellationToken);
        if (kill.ExitCode != 0 && !_process.HasExited)
        {
            throw new InvalidOperationException($"kill -TERM {Pid} exited with {kill.ExitCode}: {error}");
        }
    }

    /// <summary>Waits for the process to exit; false when it is still running after <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            await _process.WaitForExitAsync(deadline.Token);
            return true;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>CPU time (user + system) the process has used so far, from <c>/proc/&lt;pid&gt;/stat</c>.</summary>
    public TimeSpan ReadCpuTime()
    {
        string stat = File.ReadAllText($"/proc/{Pid.ToString(CultureInfo.InvariantCulture)}/stat");
        // The command name (field 2) is in parentheses and may hold spaces; the fields after it are plain.
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // fields[0] is field 3 (state), so utime (field 14) is fields[11] and stime (field 15) is fields[12].
        long ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return TimeSpan.FromSeconds(ticks / (double)ClockTicksPerSecond.Value);
    }

    /// <summary>The last lines of the node's standard error and output, for a failure message.</summary>
    public string Tail(int lines = 20)
    {
        static IEnumerable<string> Last(string path, int count) =>
            File.Exists(path) ? File.ReadLines(path).TakeLast(count) : [];

        return string.Join(Environment.NewLine, Last(StderrPath, lines).Concat(Last(StdoutPath, lines)));
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            Kill();
            await WaitForExitAsync(TimeSpan.FromSeconds(10), CancellationToken.None);
        }

        // The copies end when the pipes close; a grandchild holding them open must not hang the harness.
        await Task.WhenAll(_copyOutput, _copyError).WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(static _ => { },
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        _process.Dispose();
    }

    private static async Task CopyToFileAsync(Stream source, string path)
    {
        await using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 4096, useAsync: true);
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await source.ReadAsync(buffer)) > 0)
        {
            await file.WriteAsync(buffer.AsMemory(0, read));
            await file.FlushAsync();
        }
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static readonly Lazy<long> ClockTicksPerSecond = new(() =>
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
    });
}

/// <summary>What every node of a scenario shares: the build to run, the database and the test timings.</summary>
internal sealed record NodeLaunch(
    string DotnetHost,
    string ApiDll,
    string RunDirectory,
    string ConnectionString,
    IReadOnlyDictionary<string, string> Timings)
{
    /// <summary>Short leases and backoffs, so crashes are recovered within seconds, not minutes.</summary>
    public static readonly IReadOnlyDictionary<string, string> TestTimings = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["Operations__LeaseDuration"] = "00:00:04",
        ["Operations__LeaseRenewInterval"] = "00:00:01",
        ["Operations__LeaseRescueInterval"] = "00:00:01",
        ["Operations__RetryBaseDelay"] = "00:00:00.100",
        ["Operations__RetryMaxDelay"] = "00:00:01",
        ["Operations__ShutdownTimeout"] = "00:00:05",
    };

    /// <summary>The ShutdownTimeout in <see cref="TestTimings"/>.</summary>
    public static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(5);
}
