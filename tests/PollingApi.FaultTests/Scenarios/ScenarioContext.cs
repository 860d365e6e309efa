using System.Diagnostics;
using PollingApi.FaultTests.Infrastructure;
using PollingApi.Harness;
using PollingApi.LocalPostgres;

namespace PollingApi.FaultTests.Scenarios;

/// <summary>What every scenario is given: the settings, the harness's PostgreSQL cluster and HTTP client.</summary>
internal sealed record ScenarioContext(
    FaultTestSettings Settings,
    LocalPostgresCluster Cluster,
    HttpClient Http,
    string DotnetHost)
{
    /// <summary>
    /// Creates the scenario's database, its key (the scenario is its tenant's client and also its operator: it reads the
    /// consistency check) and the launch settings of its nodes (logs in the run folder).
    /// </summary>
    public async Task<(ScenarioDatabase Database, NodeLaunch Launch)> PrepareAsync(string scenario, CancellationToken cancellationToken)
    {
        var database = await ScenarioDatabase.CreateAsync(Cluster, "fault_" + scenario, cancellationToken);
        string runDirectory = Path.Combine(Settings.RunDirectory, scenario);
        Directory.CreateDirectory(runDirectory);
        string apiKey = await ApiKeyCommand.CreateAsync(DotnetHost, Settings.ApiDll, database.NodeConnectionString, "fault-" + scenario,
            [.. ApiKeyCommand.ClientScopes, "admin"], "fault", cancellationToken);
        return (database, new NodeLaunch(DotnetHost, Settings.ApiDll, runDirectory, database.NodeConnectionString, apiKey, NodeLaunch.TestTimings));
    }

    public ApiClient Client(NodeProcess node, Stopwatch clock) => new(Http, node.BaseAddress, node.ApiKey, clock);
}

/// <summary>Waiting on a condition with a deadline: no scenario sleeps for synchronisation.</summary>
internal static class Waiting
{
    /// <summary>Checks <paramref name="condition"/> every <paramref name="interval"/> until it holds (true) or the deadline passes (false).</summary>
    public static async Task<bool> UntilAsync(Func<Task<bool>> condition, TimeSpan deadline, TimeSpan interval,
        CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            if (await condition())
            {
                return true;
            }

            if (watch.Elapsed > deadline)
            {
                return false;
            }

            await Task.Delay(interval, cancellationToken);
        }
    }
}
