using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace PollingApi.Benchmarks.Infrastructure;

/// <summary>
/// The API as production runs it: <c>dotnet PollingApi.dll</c> from its output folder (so it reads its
/// appsettings.json), Production environment, warnings-only logging, on a free loopback port. Its standard
/// output and error go to files in the run folder.
/// </summary>
internal sealed class ApiProcess : IAsyncDisposable
{
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(45);

    private readonly Process _process;
    private readonly Task _copyOutput;
    private readonly Task _copyError;

    private ApiProcess(Process process, Uri baseAddress, string logPath, Task copyOutput, Task copyError)
    {
        _process = process;
        BaseAddress = baseAddress;
        LogPath = logPath;
        _copyOutput = copyOutput;
        _copyError = copyError;
        Pid = process.Id;
    }

    public Uri BaseAddress { get; }

    public int Pid { get; }

    public string LogPath { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>Starts the API and waits until <c>/health/ready</c> answers 200.</summary>
    public static async Task<ApiProcess> StartAsync(string apiDll, string connectionString, IReadOnlyDictionary<string, string> extraEnvironment,
        string logPath, HttpClient http, CancellationToken cancellationToken)
    {
        int port = FreeLoopbackPort();
        var baseAddress = new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/");
        var startInfo = new ProcessStartInfo(DotnetHost())
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = Path.GetDirectoryName(apiDll)!,
        };
        startInfo.ArgumentList.Add(apiDll);
        startInfo.ArgumentList.Add("--urls");
        startInfo.ArgumentList.Add(baseAddress.GetLeftPart(UriPartial.Authority));
        startInfo.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        startInfo.Environment["DOTNET_ENVIRONMENT"] = "Production";
        startInfo.Environment["ConnectionStrings__Operations"] = connectionString;
        startInfo.Environment["Logging__LogLevel__Default"] = "Warning";
        foreach (var (name, value) in extraEnvironment)
        {
            startInfo.Environment[name] = value;
        }

        var process = Process.Start(startInfo) ?? throw new InvalidOperationException($"Could not start {startInfo.FileName}.");
        process.StandardInput.Close();
        var api = new ApiProcess(process, baseAddress, logPath,
            CopyToFileAsync(process.StandardOutput.BaseStream, logPath + ".stdout"),
            CopyToFileAsync(process.StandardError.BaseStream, logPath + ".stderr"));
        try
        {
            await api.WaitUntilReadyAsync(http, TimeSpan.FromSeconds(120), cancellationToken);
            return api;
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
    public string Tail(int lines = 30)
    {
        static IEnumerable<string> Last(string path, int count) => File.Exists(path) ? File.ReadLines(path).TakeLast(count) : [];
        return string.Join(Environment.NewLine, Last(LogPath + ".stderr", lines).Concat(Last(LogPath + ".stdout", lines)));
    }

    /// <summary>SIGTERM (the host's graceful shutdown), then SIGKILL if it is still running after 45 s. Returns the exit code.</summary>
    public async Task<int?> StopAsync(CancellationToken cancellationToken)
    {
        if (!_process.HasExited)
        {
            var startInfo = new ProcessStartInfo("kill") { UseShellExecute = false, RedirectStandardError = true };
            startInfo.ArgumentList.Add("-TERM");
            startInfo.ArgumentList.Add(Pid.ToString(CultureInfo.InvariantCulture));
            using (var kill = Process.Start(startInfo) ?? throw new InvalidOperationException("Could not start kill."))
            {
                await kill.StandardError.ReadToEndAsync(cancellationToken);
                await kill.WaitForExitAsync(cancellationToken);
            }

            if (!await WaitForExitAsync(StopTimeout, cancellationToken))
            {
                Kill();
                await WaitForExitAsync(TimeSpan.FromSeconds(10), CancellationToken.None);
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
                Kill();
            }
        }

        // The copies end when the pipes close; a grandchild holding them open must not hang the driver.
        await Task.WhenAll(_copyOutput, _copyError).WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(static _ => { },
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        _process.Dispose();
    }

    private async Task WaitUntilReadyAsync(HttpClient http, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var ready = new Uri(BaseAddress, "health/ready");
        var started = Stopwatch.StartNew();
        string last = "no answer yet";
        while (started.Elapsed < timeout)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException(
                    $"The API exited with {_process.ExitCode.ToString(CultureInfo.InvariantCulture)} before it was ready:{Environment.NewLine}{Tail()}");
            }

            try
            {
                using var response = await http.GetAsync(ready, cancellationToken);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }

                last = $"HTTP {((int)response.StatusCode).ToString(CultureInfo.InvariantCulture)}";
            }
            catch (HttpRequestException ex)
            {
                last = ex.Message;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken);
        }

        throw new TimeoutException($"The API was not ready within {timeout.TotalSeconds:0} s (last: {last}):{Environment.NewLine}{Tail()}");
    }

    private async Task<bool> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken)
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

    private void Kill()
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

    private static async Task CopyToFileAsync(Stream source, string path)
    {
        await using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 4096, useAsync: true);
        await source.CopyToAsync(file);
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string DotnetHost() =>
        Environment.ProcessPath is { } path && Path.GetFileNameWithoutExtension(path) == "dotnet"
            ? path
            : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
}
