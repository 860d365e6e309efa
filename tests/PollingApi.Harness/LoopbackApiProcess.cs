using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace PollingApi.Harness;

/// <summary>How <see cref="LoopbackApiProcess.WaitUntilReadyAsync"/> ended.</summary>
public enum Readiness
{
    /// <summary><c>/health/ready</c> answered 200.</summary>
    Ready,

    /// <summary>The process exited first.</summary>
    Exited,

    /// <summary>It was not ready within the timeout.</summary>
    TimedOut,
}

/// <summary>
/// A PollingApi process (<c>dotnet PollingApi.dll</c>, Production environment, warnings-only logging) listening on a
/// free loopback port, its standard output and error copied to files. It can be asked to stop (SIGTERM), killed
/// (SIGKILL), waited for, and polled until it is ready.
/// </summary>
public sealed class LoopbackApiProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Task _copyOutput;
    private readonly Task _copyError;
    private int _disposed;

    private LoopbackApiProcess(Process process, Uri baseAddress, string stdoutPath, string stderrPath)
    {
        _process = process;
        BaseAddress = baseAddress;
        StdoutPath = stdoutPath;
        StderrPath = stderrPath;
        Pid = process.Id;
        _copyOutput = CopyToFileAsync(process.StandardOutput.BaseStream, stdoutPath);
        _copyError = CopyToFileAsync(process.StandardError.BaseStream, stderrPath);
    }

    /// <summary>
    /// The dotnet host to run the API on: the one running this harness when it was started as <c>dotnet &lt;dll&gt;</c>,
    /// else <c>DOTNET_HOST_PATH</c>, else <c>dotnet</c> from the PATH.
    /// </summary>
    public static string DotnetHost =>
        Environment.ProcessPath is { } path && Path.GetFileNameWithoutExtension(path) == "dotnet"
            ? path
            : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";

    public Uri BaseAddress { get; }

    public int Pid { get; }

    public string StdoutPath { get; }

    public string StderrPath { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>Null while it runs.</summary>
    public int? ExitCode => _process.HasExited ? _process.ExitCode : null;

    /// <summary>
    /// Starts <paramref name="apiDll"/> from its output folder (so it reads its appsettings.json) against
    /// <paramref name="connectionString"/>; <paramref name="environment"/> adds variables or overrides the defaults.
    /// </summary>
    public static LoopbackApiProcess Start(string dotnetHost, string apiDll, string connectionString,
        IEnumerable<KeyValuePair<string, string>> environment, string stdoutPath, string stderrPath)
    {
        ArgumentNullException.ThrowIfNull(environment);
        int port = FreeLoopbackPort();
        var baseAddress = new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/");
        var startInfo = new ProcessStartInfo(dotnetHost)
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
        // The harnesses read the simple format's level prefixes ("fail:", "warn:"); Production's default is JSON.
        startInfo.Environment["Logging__Console__FormatterName"] = "simple";
        foreach (var (name, value) in environment)
        {
            startInfo.Environment[name] = value;
        }

        var process = Process.Start(startInfo) ?? throw new InvalidOperationException($"Could not start {dotnetHost}.");
        process.StandardInput.Close();
        return new LoopbackApiProcess(process, baseAddress, stdoutPath, stderrPath);
    }

    /// <summary>
    /// Polls <c>/health/ready</c> every <paramref name="pollInterval"/> until it answers 200, the process exits or
    /// <paramref name="timeout"/> passes; also returns the last answer ("HTTP 503", an error message) for a failure message.
    /// </summary>
    public async Task<(Readiness Outcome, string LastAnswer)> WaitUntilReadyAsync(HttpClient http, TimeSpan timeout, TimeSpan pollInterval,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(http);
        var ready = new Uri(BaseAddress, "health/ready");
        var started = Stopwatch.StartNew();
        string last = "no answer yet";
        while (true)
        {
            if (_process.HasExited)
            {
                return (Readiness.Exited, last);
            }

            try
            {
                using var response = await http.GetAsync(ready, cancellationToken);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return (Readiness.Ready, last);
                }

                last = $"HTTP {((int)response.StatusCode).ToString(CultureInfo.InvariantCulture)}";
            }
            catch (HttpRequestException ex)
            {
                last = ex.Message;
            }

            if (started.Elapsed > timeout)
            {
                return (Readiness.TimedOut, last);
            }

            await Task.Delay(pollInterval, cancellationToken);
        }
    }

    /// <summary>SIGKILL: the process dies at once.</summary>
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

    /// <summary>
    /// SIGTERM (the host's graceful shutdown), sent with <c>kill</c>, without waiting for the process to exit.
    /// Returns null, or what <c>kill</c> said when it failed.
    /// </summary>
    public async Task<string?> SendTerminateAsync(CancellationToken cancellationToken)
    {
        var startInfo = new ProcessStartInfo("kill") { UseShellExecute = false, RedirectStandardError = true };
        startInfo.ArgumentList.Add("-TERM");
        startInfo.ArgumentList.Add(Pid.ToString(CultureInfo.InvariantCulture));
        using var kill = Process.Start(startInfo) ?? throw new InvalidOperationException("Could not start kill.");
        string error = await kill.StandardError.ReadToEndAsync(cancellationToken);
        await kill.WaitForExitAsync(cancellationToken);
        return kill.ExitCode == 0 ? null : $"kill -TERM {Pid} exited with {kill.ExitCode}: {error}";
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

    /// <summary>The last <paramref name="lines"/> lines of its standard error, then of its standard output, for a failure message.</summary>
    public string Tail(int lines)
    {
        static IEnumerable<string> Last(string path, int count) =>
            File.Exists(path) ? File.ReadLines(path).TakeLast(count) : [];

        return string.Join(Environment.NewLine, Last(StderrPath, lines).Concat(Last(StdoutPath, lines)));
    }

    /// <summary>Kills the process if it still runs, then waits (briefly) for its output to reach the files.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

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
            // Flushed as it comes, so a tail read while the process runs (or just after it died) sees its last words.
            await file.FlushAsync();
        }
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
