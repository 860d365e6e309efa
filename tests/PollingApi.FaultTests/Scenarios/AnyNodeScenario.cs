using System.Diagnostics;
using System.Text.Json.Nodes;
using Npgsql;
using PollingApi.FaultTests.Infrastructure;
using PollingApi.Harness;

namespace PollingApi.FaultTests.Scenarios;

/// <summary>
/// Every node is <c>All</c> (it takes submits and runs handlers, claiming at insert when it has a free slot), clients
/// spread their submits over all of them, and any node is killed (SIGKILL) and restarted under the same node id every
/// few seconds: every other kill hits the node that has just answered a 202, preferably one it claimed at insert. In the
/// middle PostgreSQL stops for a few seconds, and nodes restarted meanwhile must wait for it. Nothing accepted may be
/// lost or stored twice, everything ends within the bound, and the ledger is exact.
/// </summary>
/// <remarks>
/// A restarted node keeps its node id, as a restarted pod keeps its name. That is the harder case for the engine: the new
/// process's rows and the rows its previous life left running carry the same <c>locked_by</c>. Every fenced write also
/// names the attempt, lease renewal names the operations this process runs, and a node releases nothing at start, so the
/// previous life's rows wait for lease rescue like a dead node's. (The crash scenario restarts workers under new ids.)
/// </remarks>
internal sealed class AnyNodeScenario(ScenarioContext context)
{
    public const string Name = "any-node";

    /// <summary>How many operations the load submits without <c>--operations</c>.</summary>
    public const int DefaultOperations = 3000;

    private const int NodeCount = 3;
    private static readonly TimeSpan OutageLength = TimeSpan.FromSeconds(8);
    private static readonly TimeSpan TerminalDeadlineAfterLastFault = TimeSpan.FromSeconds(120);
    private static readonly TimeSpan ReadyAtEndDeadline = TimeSpan.FromSeconds(60);

    /// <summary>How long an armed kill waits for a 202 of an operation claimed at insert before it takes any 202.</summary>
    private static readonly TimeSpan PreferClaimedAtInsertFor = TimeSpan.FromSeconds(1.5);

    /// <summary>How long an armed kill waits for any 202 (none come while the database is down) before it kills a random node.</summary>
    private static readonly TimeSpan ArmedKillTimeout = TimeSpan.FromSeconds(5);

    private readonly Lock _nodesLock = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private NodeProcess[] _nodes = [];
    private ArmedKill? _armed;
    private volatile bool _databaseDown;

    private int Operations => context.Settings.Operations ?? DefaultOperations;

    public async Task<ScenarioReport> RunAsync(CancellationToken cancellationToken)
    {
        var report = new ScenarioReport(Name);
        var settings = context.Settings;
        var duration = settings.Duration ?? TimeSpan.FromSeconds(Math.Max(40, Operations / 100.0));
        report.Summary["seed"] = settings.Seed;
        report.Summary["operationsRequested"] = Operations;
        report.Summary["restartedUnder"] = "the same node id";

        var (database, launch) = await context.PrepareAsync(Name, cancellationToken);
        await using var databaseScope = database;
        await using var sampler = new RunningSampler(database, node => CurrentNodes().FirstOrDefault(n => n.NodeId == node)?.StartedAt);
        await using var fleet = new NodeFleet(launch, context.Http);

        _nodes = [.. Enumerable.Range(1, NodeCount).Select(n => fleet.StartWithoutWaiting($"{Name}-{n}", NodeRole.All))];
        foreach (var node in _nodes)
        {
            await fleet.WaitUntilReadyAsync(node, cancellationToken);
        }

        var client = context.Client(_nodes[0], _clock);
        IReadOnlyList<OpenedAccount> accounts = [];
        IReadOnlyList<AcceptedOperation> openings = [];
        if (!settings.SkipLedger)
        {
            (accounts, openings) = await AccountOpening.OpenAsync(client, database, report, Name, settings.Clients, cancellationToken);
        }

        Console.WriteLine($"  submitting {Operations} operations to {NodeCount} nodes over at least {duration.TotalSeconds:0} s with {settings.Clients} clients, " +
                          $"killing a node every {settings.KillInterval.TotalSeconds:0} s; PostgreSQL stops for {OutageLength.TotalSeconds:0} s half-way");
        var load = new SpreadLoad(context, CurrentNodes, _clock, Name) { Accepted = KillIfArmed };
        var loadStart = _clock.Elapsed;
        using var loadCancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var submits = load.RunAsync(Operations, duration, accounts, loadCancellation.Token);
        var outage = StopPostgresAsync(database, duration / 2 - OutageLength / 2, cancellationToken);
        Kills kills;
        try
        {
            kills = await KillWhileAsync(submits, fleet, database, cancellationToken);
        }
        finally
        {
            // The kill loop failed: stop the clients too, the nodes are about to be killed.
            if (!submits.IsCompleted)
            {
                await loadCancellation.CancelAsync();
            }

            // Whatever failed, PostgreSQL runs again before anything else happens.
            await outage.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        var window = await outage;
        await submits;
        var loadEnd = _clock.Elapsed;
        Console.WriteLine($"  load done in {(loadEnd - loadStart).TotalSeconds:0.0} s: {load.Records.Count(r => r.AcceptedId is not null)} accepted, " +
                          $"{kills.Count} kills ({kills.RightAfterA202} right after a 202, {kills.RightAfterAClaimAtInsert} of them claimed at insert)");

        foreach (var node in CurrentNodes())
        {
            var ready = await node.WaitUntilReadyAsync(context.Http, ReadyAtEndDeadline, TimeSpan.FromMilliseconds(100), cancellationToken);
            report.Require(ready == Readiness.Ready, "nodes-ready-at-end",
                () => $"node {node.NodeId} (pid {node.Pid}) was {ready} instead of ready within {ReadyAtEndDeadline.TotalSeconds:0} s of the load's end; " +
                      $"its last output:{Environment.NewLine}{node.Tail()}");
        }

        var lastFault = new[] { kills.LastKillAt ?? loadEnd, window.StartedAt }.Max();
        long unfinishedAtLoadEnd = await database.CountUnfinishedAsync(cancellationToken);
        var remaining = lastFault + TerminalDeadlineAfterLastFault - _clock.Elapsed;
        var waited = await database.WaitUntilAllTerminalAsync(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero, cancellationToken);
        if (waited is null)
        {
            report.Violation("all-terminal-in-time",
                $"{await database.CountUnfinishedAsync(cancellationToken)} operations were still not terminal " +
                $"{TerminalDeadlineAfterLastFault.TotalSeconds:0} s after the last kill");
        }

        report.Summary["loadSeconds"] = Round(loadEnd - loadStart);
        report.Summary["kills"] = kills.Count;
        report.Summary["killsRightAfterA202"] = new JsonObject
        {
            ["kills"] = kills.RightAfterA202,
            ["ofAnOperationClaimedAtInsert"] = kills.RightAfterAClaimAtInsert,
        };
        await CheckStartedWhileDownAsync(report, kills, window);
        report.Summary["operationsHeldByKilledNodes"] = kills.OperationsHeld;
        report.Summary["outage"] = new JsonObject
        {
            ["beganAtSeconds"] = Round(window.StoppedAt - loadStart),
            ["downSeconds"] = Round(window.StartedAt - window.StoppedAt),
        };
        report.Summary["unfinishedAtLoadEnd"] = unfinishedAtLoadEnd;
        report.Summary["lastKillToAllTerminalSeconds"] = waited is null ? null : Round(_clock.Elapsed - (kills.LastKillAt ?? loadEnd));

        foreach (var node in CurrentNodes().Where(n => n.HasExited))
        {
            report.Violation("nodes-still-running", $"node {node.NodeId} (pid {node.Pid}) exited with {node.ExitCode} although it was not killed");
        }

        await sampler.StopAsync(report);
        client = context.Client(CurrentNodes()[0], _clock);
        var operations = await new SubmitInvariants(report, database, client).CheckAsync(load.Records, openings, accounts, cancellationToken);
        report.Summary["operations"] = operations.Select(o => o.Id).Distinct().Count();
        await CheckKilledAfterA202Async(report, database, kills, cancellationToken);
        await new CrashInvariants(report, database, client, accounts.Count >= 2, settings.Seed).CheckAsync(operations, accounts, cancellationToken);
        return report;
    }

    private NodeProcess[] CurrentNodes()
    {
        lock (_nodesLock)
        {
            return _nodes;
        }
    }

    /// <summary>
    /// Every <c>--kill-interval</c> seconds, SIGKILLs a node and starts it again under the same id, until the load ends. Every
    /// other kill is armed instead: the next node to answer a 202 (of an operation it claimed at insert, if one comes within
    /// <see cref="PreferClaimedAtInsertFor"/>) is killed on the spot, by the client that got the answer.
    /// </summary>
    private async Task<Kills> KillWhileAsync(Task load, NodeFleet fleet, ScenarioDatabase database, CancellationToken cancellationToken)
    {
        var random = new Random(context.Settings.Seed);
        var kills = new Kills();
        while (true)
        {
            await Task.WhenAny(load, Task.Delay(context.Settings.KillInterval, cancellationToken));
            cancellationToken.ThrowIfCancellationRequested();
            if (load.IsCompleted)
            {
                return kills;
            }

            NodeProcess? victim = null;
            if (kills.Count % 2 == 1)
            {
                var armed = new ArmedKill(_clock.Elapsed);
                Volatile.Write(ref _armed, armed);
                await Task.WhenAny(armed.Killed, Task.Delay(ArmedKillTimeout, cancellationToken));
                // Disarmed here, unless a client took it first: then it has fired (or is firing) and Killed completes at once.
                if (Interlocked.CompareExchange(ref _armed, null, armed) != armed)
                {
                    var (node, claimedAtInsert) = await armed.Killed;
                    victim = node;
                    kills.RightAfterA202++;
                    kills.RightAfterAClaimAtInsert += claimedAtInsert ? 1 : 0;
                    if (armed.OperationId is { } accepted)
                    {
                        kills.LastAccepted.Add(accepted);
                    }
                }
            }

            if (victim is null)
            {
                var current = CurrentNodes();
                victim = current[random.Next(current.Length)];
                victim.Kill();
            }

            if (!await victim.WaitForExitAsync(TimeSpan.FromSeconds(10), cancellationToken))
            {
                throw new InvalidOperationException($"Node {victim.NodeId} (pid {victim.Pid}) did not die of SIGKILL within 10 s.");
            }

            kills.Count++;
            kills.LastKillAt = _clock.Elapsed;
            // Counted before the new process starts: it runs under the same id.
            kills.OperationsHeld += await CountHeldAsync(database, victim.NodeId, cancellationToken);
            kills.Victims.Add(victim);
            bool databaseDown = _databaseDown;
            var replacement = fleet.StartAgain(victim);
            lock (_nodesLock)
            {
                _nodes = [.. _nodes.Select(n => n == victim ? replacement : n)];
            }

            if (databaseDown)
            {
                kills.StartedWhileDown.Add((replacement, ReadyAtAsync(replacement, cancellationToken)));
            }
        }
    }

    /// <summary>Called by a client on every 202: when a kill is armed, this node dies now.</summary>
    private void KillIfArmed(NodeProcess node, ApiAnswer answer)
    {
        var armed = Volatile.Read(ref _armed);
        if (armed is null)
        {
            return;
        }

        bool claimedAtInsert = answer is { Status: 202, Replayed: false, OperationStatus: "running" };
        if (!claimedAtInsert && _clock.Elapsed - armed.ArmedAt < PreferClaimedAtInsertFor)
        {
            return;
        }

        if (Interlocked.CompareExchange(ref _armed, null, armed) == armed)
        {
            node.Kill();
            armed.Fire(node, claimedAtInsert, answer.OperationId);
        }
    }

    /// <summary>After <paramref name="delay"/>, stops PostgreSQL (fast shutdown) for <see cref="OutageLength"/>, then starts it again.</summary>
    private async Task<OutageWindow> StopPostgresAsync(ScenarioDatabase database, TimeSpan delay, CancellationToken cancellationToken)
    {
        await Task.Delay(delay > TimeSpan.Zero ? delay : TimeSpan.Zero, cancellationToken);
        bool stopped = false;
        try
        {
            Console.WriteLine("  stopping PostgreSQL");
            var stoppedAt = _clock.Elapsed;
            stopped = true;
            _databaseDown = true;
            await context.Cluster.StopServerAsync(immediate: false, cancellationToken);
            await Task.Delay(OutageLength, cancellationToken);
            await context.Cluster.StartServerAsync(cancellationToken);
            stopped = false;
            _databaseDown = false;
            // The harness's own pooled connections died with the server.
            database.DataSource.Clear();
            Console.WriteLine($"  PostgreSQL is back after {(_clock.Elapsed - stoppedAt).TotalSeconds:0.0} s");
            return new OutageWindow(stoppedAt, _clock.Elapsed);
        }
        finally
        {
            if (stopped && !cancellationToken.IsCancellationRequested)
            {
                await context.Cluster.StartServerAsync(CancellationToken.None);
                _databaseDown = false;
            }
        }
    }

    /// <summary>When <paramref name="node"/>'s <c>/health/ready</c> first answered 200; null if it exited first or took longer than the deadline.</summary>
    private async Task<TimeSpan?> ReadyAtAsync(NodeProcess node, CancellationToken cancellationToken) =>
        await node.WaitUntilReadyAsync(context.Http, ReadyAtEndDeadline + OutageLength, TimeSpan.FromMilliseconds(100), cancellationToken) == Readiness.Ready
            ? _clock.Elapsed
            : null;

    /// <summary>
    /// A node restarted while PostgreSQL was down waits for it and becomes ready by itself once it is back, unless it was
    /// killed again first.
    /// </summary>
    private static async Task CheckStartedWhileDownAsync(ScenarioReport report, Kills kills, OutageWindow window)
    {
        var started = new JsonArray();
        foreach (var (node, readyAtTask) in kills.StartedWhileDown)
        {
            var readyAt = await readyAtTask;
            bool killedFirst = readyAt is null && kills.Victims.Contains(node);
            report.Require(readyAt is not null || killedFirst, "restarted-while-down-becomes-ready",
                () => $"node {node.NodeId} (pid {node.Pid}), started while PostgreSQL was down, was not ready in time (exited: {node.HasExited}, " +
                      $"exit code {node.ExitCode}); its last output:{Environment.NewLine}{node.Tail()}");
            started.Add(new JsonObject
            {
                ["node"] = node.NodeId,
                ["readyAfterDatabaseBackSeconds"] = readyAt is { } ready ? Round(ready - window.StartedAt) : null,
                ["killedBeforeReady"] = killedFirst,
            });
        }

        report.Summary["restartedWhileDatabaseDown"] = started;
    }

    /// <summary>The rows still running under the node's id just after it died: what lease rescue must return.</summary>
    private static async Task<long> CountHeldAsync(ScenarioDatabase database, string nodeId, CancellationToken cancellationToken)
    {
        try
        {
            var running = await database.CountRunningByNodeAsync(cancellationToken);
            return running.GetValueOrDefault(nodeId);
        }
        catch (NpgsqlException)
        {
            // The database is down: what the node held is counted by the rescues.
            return 0;
        }
    }

    /// <summary>How the operations whose 202 was the last word of a killed node ended.</summary>
    private static async Task CheckKilledAfterA202Async(ScenarioReport report, ScenarioDatabase database, Kills kills, CancellationToken cancellationToken)
    {
        var rows = await database.ReadOperationsAsync(cancellationToken);
        var ends = new JsonObject();
        foreach (var id in kills.LastAccepted)
        {
            string end = rows.TryGetValue(id, out var row) ? $"{row.Status}, attempts {row.Attempts}" : "missing";
            ends[end] = ((int?)ends[end] ?? 0) + 1;
        }

        report.Summary["operationsAcceptedRightBeforeTheirNodeDied"] = ends;
    }

    private static double Round(TimeSpan span) => Math.Round(span.TotalSeconds, 1);

    private sealed record OutageWindow(TimeSpan StoppedAt, TimeSpan StartedAt);

    /// <summary>A kill waiting for the next 202.</summary>
    private sealed class ArmedKill(TimeSpan armedAt)
    {
        private readonly TaskCompletionSource<(NodeProcess Node, bool ClaimedAtInsert)> _killed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TimeSpan ArmedAt { get; } = armedAt;

        public Guid? OperationId { get; private set; }

        public Task<(NodeProcess Node, bool ClaimedAtInsert)> Killed => _killed.Task;

        public void Fire(NodeProcess node, bool claimedAtInsert, Guid? operationId)
        {
            OperationId = operationId;
            _killed.SetResult((node, claimedAtInsert));
        }
    }

    private sealed class Kills
    {
        public int Count { get; set; }

        public int RightAfterA202 { get; set; }

        public int RightAfterAClaimAtInsert { get; set; }

        public HashSet<NodeProcess> Victims { get; } = [];

        /// <summary>The processes started while PostgreSQL was down, and when each became ready (null: it did not).</summary>
        public List<(NodeProcess Node, Task<TimeSpan?> ReadyAt)> StartedWhileDown { get; } = [];

        public long OperationsHeld { get; set; }

        public TimeSpan? LastKillAt { get; set; }

        public List<Guid> LastAccepted { get; } = [];
    }
}
