using System.Globalization;
using PollingApi.Harness;

namespace PollingApi.Benchmarks.Infrastructure;

/// <summary>
/// The API as production runs it: <c>dotnet PollingApi.dll</c> from its output folder (so it reads its
/// appsettings.json), Production environment, warnings-only logging, on a free loopback port. Its standard
/// output and error go to files in the run folder.
/// </summary>
internal sealed class ApiProcess : IAsyncDisposable
{
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(45);
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(120);

    private readonly LoopbackApiProcess _process;

    private ApiProcess(LoopbackApiProcess process, string logPath)
    {
        _process = process;
        LogPath = logPath;
    }

    public Uri BaseAddress => _process.BaseAddress;

    public int Pid => _process.Pid;

    public string LogPath { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>Starts the API and waits until <c>/health/ready</c> answers 200.</summary>
    public static async Task<ApiProcess> StartAsync(string apiDll, string connectionString, IReadOnlyDictionary<string, string> extraEnvironment,
        string logPath, HttpClient http, CancellationToken cancellationToken)
    {
        var api = new ApiProcess(
            LoopbackApiProcess.Start(LoopbackApiProcess.DotnetHost, apiDll, connectionString, extraEnvironment, logPath + ".stdout", logPath + ".stderr"),
            logPath);
        try
        {
            var (outcome, last) = await api._process.WaitUntilReadyAsync(http, ReadyTimeout, TimeSpan.FromMilliseconds(200), cancellationToken);
            return outcome switch
            {
                Readiness.Ready => api,
                Readiness.Exited => throw new InvalidOperationException(
                    $"The API exited with {api._process.ExitCode?.ToString(CultureInfo.InvariantCulture)} before it was ready:{Environment.NewLine}{api.Tail()}"),
                _ => throw new TimeoutException(
                    $"The API was not ready within {ReadyTimeout.TotalSeconds:0} s (last: {last}):{Environment.NewLine}{api.Tail()}"),
            };
        }
        catch
        {
            await api.DisposeAsync();
            throw;
        }
    }

    /// <summary>Peak and current resident memory from <c>/proc/&lt;pid&gt;/status</c>, in bytes.</summary>
    public (long PeakResident, long Resident) ReadMemory()
    {
        long peak = 0;
        long current = 0;
        foreach (string line in File.ReadLines($"/proc/{Pid.ToString(CultureInfo.InvariantCulture)}/status"))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                peak = Kilobytes(line) * 1024;
            }
            else if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                current = Kilobytes(line) * 1024;
            }
        }

        return (peak, current);

        static long Kilobytes(string line) =>
            long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }

    /// <summary>The last lines of the API's standard error and output, for a failure message.</summary>
    public string Tail(int lines = 30) => _process.Tail(lines);

    /// <summary>SIGTERM (the host's graceful shutdown), then SIGKILL if it is still running after 45 s. Returns the exit code.</summary>
    public async Task<int?> StopAsync(CancellationToken cancellationToken)
    {
        if (!_process.HasExited)
        {
            // A failed kill -TERM is not an error here: the process is killed after StopTimeout anyway.
            await _process.SendTerminateAsync(cancellationToken);
            if (!await _process.WaitForExitAsync(StopTimeout, cancellationToken))
            {
                _process.Kill();
                await _process.WaitForExitAsync(TimeSpan.FromSeconds(10), CancellationToken.None);
                return null;
            }
        }

        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            try
            {
                await StopAsync(CancellationToken.None);
            }
            catch (InvalidOperationException)
            {
                _process.Kill();
            }
        }

        await _process.DisposeAsync();
    }
}
