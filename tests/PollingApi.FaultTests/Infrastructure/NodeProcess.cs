using PollingApi.Harness;

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
    private readonly LoopbackApiProcess _process;

    private NodeProcess(string nodeId, NodeRole role, LoopbackApiProcess process)
    {
        NodeId = nodeId;
        Role = role;
        _process = process;
    }

    /// <summary>The node's <c>Operations:NodeId</c>, which is also its name in the run folder.</summary>
    public string NodeId { get; }

    public NodeRole Role { get; }

    public Uri BaseAddress => _process.BaseAddress;

    public int Pid => _process.Pid;

    public string StdoutPath => _process.StdoutPath;

    public string StderrPath => _process.StderrPath;

    /// <summary>When the harness started this process: every operation it claims is started after this.</summary>
    public DateTimeOffset StartedAt { get; private init; }

    /// <summary>The key the scenario's clients send (made with the API's own api-keys command).</summary>
    public string ApiKey { get; private init; } = "";

    public bool HasExited => _process.HasExited;

    public int? ExitCode => _process.ExitCode;

    /// <param name="launch">What every node of the scenario shares.</param>
    /// <param name="nodeId">Its <c>Operations:NodeId</c>.</param>
    /// <param name="role">Its <c>Operations:Role</c>.</param>
    /// <param name="logName">The name of its log files in the run folder; the node id when null (a node restarted under the same
    /// id needs another, so that the first life's logs are kept).</param>
    public static NodeProcess Start(NodeLaunch launch, string nodeId, NodeRole role, string? logName = null)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["Operations__Role"] = role.ToString(),
            ["Operations__NodeId"] = nodeId,
            ["Diagnostics__Enabled"] = "true",
            // The scenarios measure recovery from faults, not the limits: a scenario's load is one tenant's.
            ["RateLimiting__Enabled"] = "false",
            ["Operations__MaxUnfinishedPerTenant"] = "0",
        };
        foreach (var (name, value) in launch.Timings.Concat(launch.Settings))
        {
            environment[name] = value;
        }

        var startedAt = TimeProvider.System.GetUtcNow();
        var process = LoopbackApiProcess.Start(launch.DotnetHost, launch.ApiDll, launch.ConnectionString, environment,
            Path.Combine(launch.RunDirectory, (logName ?? nodeId) + ".stdout.log"), Path.Combine(launch.RunDirectory, (logName ?? nodeId) + ".stderr.log"));
        return new NodeProcess(nodeId, role, process) { ApiKey = launch.ApiKey, StartedAt = startedAt };
    }

    /// <summary>Polls <c>/health/ready</c> until it answers 200, the node exits or <paramref name="timeout"/> passes.</summary>
    public async Task<Readiness> WaitUntilReadyAsync(HttpClient http, TimeSpan timeout, TimeSpan pollInterval, CancellationToken cancellationToken) =>
        (await _process.WaitUntilReadyAsync(http, timeout, pollInterval, cancellationToken)).Outcome;

    /// <summary>SIGKILL: the process dies at once, holding whatever leases it had.</summary>
    public void Kill() => _process.Kill();

    /// <summary>SIGTERM: the host's graceful shutdown.</summary>
    public async Task TerminateAsync(CancellationToken cancellationToken)
    {
        string? failure = await _process.SendTerminateAsync(cancellationToken);
        if (failure is not null && !_process.HasExited)
        {
            throw new InvalidOperationException(failure);
        }
    }

    /// <summary>Waits for the process to exit; false when it is still running after <paramref name="timeout"/>.</summary>
    public Task<bool> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        _process.WaitForExitAsync(timeout, cancellationToken);

    /// <summary>CPU time (user + system) the process has used so far, from <c>/proc/&lt;pid&gt;/stat</c>.</summary>
    public TimeSpan ReadCpuTime() => ProcessCpuTimes.Read(Pid).Own;

    /// <summary>The last lines of the node's standard error and output, for a failure message.</summary>
    public string Tail(int lines = 20) => _process.Tail(lines);

    public ValueTask DisposeAsync() => _process.DisposeAsync();
}

/// <summary>What every node of a scenario shares: the build to run, the database and the test timings.</summary>
internal sealed record NodeLaunch(
    string DotnetHost,
    string ApiDll,
    string RunDirectory,
    string ConnectionString,
    string ApiKey,
    IReadOnlyDictionary<string, string> Timings)
{
    /// <summary>More environment variables a scenario gives its nodes (its feature's configuration); none by default.</summary>
    public IReadOnlyDictionary<string, string> Settings { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);

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
