using PollingApi.Harness;

namespace PollingApi.FaultTests.Infrastructure;

/// <summary>
/// Every node process a scenario started. Disposing it kills whatever still runs, so no process outlives its
/// scenario, whatever way the scenario ended.
/// </summary>
internal sealed class NodeFleet(NodeLaunch launch, HttpClient http) : IAsyncDisposable
{
    private static readonly TimeSpan ReadyDeadline = TimeSpan.FromSeconds(90);

    private readonly List<NodeProcess> _started = [];
    private readonly Lock _lock = new();

    /// <summary>Starts a node and waits until its <c>/health/ready</c> answers 200.</summary>
    public async Task<NodeProcess> StartAsync(string nodeId, NodeRole role, CancellationToken cancellationToken)
    {
        var node = StartWithoutWaiting(nodeId, role);
        await WaitUntilReadyAsync(node, cancellationToken);
        return node;
    }

    public NodeProcess StartWithoutWaiting(string nodeId, NodeRole role) => Start(nodeId, role, launch);

    /// <summary>Starts a node whose environment also has <paramref name="settings"/> (over the launch's), without waiting for it.</summary>
    public NodeProcess StartWithoutWaiting(string nodeId, NodeRole role, IReadOnlyDictionary<string, string> settings) =>
        Start(nodeId, role, launch with
        {
            Settings = launch.Settings.Concat(settings).GroupBy(s => s.Key, StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => g.Last().Value, StringComparer.Ordinal),
        });

    /// <summary>
    /// Starts a new process for a node that died, under the same node id and role, as a restarted pod keeps its name
    /// (a new port, and its logs as <c>&lt;node id&gt;.&lt;life&gt;</c>). Does not wait for it.
    /// </summary>
    public NodeProcess StartAgain(NodeProcess dead)
    {
        ArgumentNullException.ThrowIfNull(dead);
        int life;
        lock (_lock)
        {
            life = _started.Count(n => n.NodeId == dead.NodeId) + 1;
        }

        return Start(dead.NodeId, dead.Role, launch, $"{dead.NodeId}.{life}");
    }

    private NodeProcess Start(string nodeId, NodeRole role, NodeLaunch nodeLaunch, string? logName = null)
    {
        var node = NodeProcess.Start(nodeLaunch, nodeId, role, logName);
        lock (_lock)
        {
            _started.Add(node);
        }

        Console.WriteLine($"  started {role} node {nodeId} (pid {node.Pid}) on {node.BaseAddress}");
        return node;
    }

    public async Task WaitUntilReadyAsync(NodeProcess node, CancellationToken cancellationToken)
    {
        switch (await node.WaitUntilReadyAsync(http, ReadyDeadline, TimeSpan.FromMilliseconds(100), cancellationToken))
        {
            case Readiness.Exited:
                throw new InvalidOperationException(
                    $"Node {node.NodeId} exited with {node.ExitCode} before it was ready. Its last output:{Environment.NewLine}{node.Tail()}");
            case Readiness.TimedOut:
                throw new TimeoutException(
                    $"Node {node.NodeId} was not ready within {ReadyDeadline.TotalSeconds:0} s. Its last output:{Environment.NewLine}{node.Tail()}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        NodeProcess[] nodes;
        lock (_lock)
        {
            nodes = [.. _started];
            _started.Clear();
        }

        foreach (var node in nodes)
        {
            await node.DisposeAsync();
        }
    }
}
