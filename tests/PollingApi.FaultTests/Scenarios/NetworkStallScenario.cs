using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Npgsql;
using PollingApi.FaultTests.Infrastructure;

namespace PollingApi.FaultTests.Scenarios;

/// <summary>
/// One worker reaches PostgreSQL through a proxy of the harness, the other nodes directly. Under load the proxy adds
/// latency, then blackholes the worker (its connections stay open and nothing answers) for longer than a lease, then
/// drops its connections: the stalled worker's attempts are fenced out, other workers finish its operations, it cancels
/// its own handlers before its leases end, and when the link heals it takes work again without a restart.
/// </summary>
internal sealed partial class NetworkStallScenario(ScenarioContext context)
{
    public const string Name = "network-stall";

    /// <summary>How many operations the load submits without <c>--operations</c>.</summary>
    public const int DefaultOperations = 3000;

    private const string StalledNode = "stall-worker-proxied";
    private const int DirectWorkers = 2;
    private const int MaxSubmitTries = 50;

    // The phases, one after the other from the start of the load.
    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan LatencyPerChunk = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan LatencyLength = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan AfterLatency = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan BlackholeLength = TimeSpan.FromSeconds(25);
    private static readonly TimeSpan AfterBlackhole = TimeSpan.FromSeconds(12);
    private static readonly TimeSpan DropLength = TimeSpan.FromSeconds(6);
    private static readonly TimeSpan AfterDrop = TimeSpan.FromSeconds(12);

    /// <summary>The harness's lease (NodeLaunch.TestTimings): the blackhole and the drop outlast it.</summary>
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(4);

    /// <summary>Nothing reaches the database from the stalled node after its link broke; what was under way has landed by then.</summary>
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A burst of sleeps submitted just before the latency and the blackhole, more than the direct workers have free
    /// slots for (they have 32 each, more than the load needs, so they can take over the stalled worker's share): the
    /// stalled worker takes the rest, so it has work in flight while its link is slow, and handlers in the middle of a
    /// sleep when it is cut off, not only outcomes to write. (A drop needs none: every statement fails at once, so a
    /// handler's own progress report ends it.)
    /// </summary>
    private const int BurstSleeps = (DirectWorkers + 1) * RunningSampler.MaxConcurrency;

    private const int MediumSleepMs = 2500;
    private const int LongSleepMs = 8000;
    private static readonly TimeSpan MediumSleepsAhead = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LongSleepsAhead = TimeSpan.FromSeconds(2);

    private static readonly TimeSpan TerminalDeadlineAfterLoad = TimeSpan.FromSeconds(60);

    private readonly ConcurrentDictionary<Guid, SleepCommand> _accepted = new();
    private int _unavailableRetries;
    private int _transportRetries;

    private int Operations => context.Settings.Operations ?? DefaultOperations;

    private static TimeSpan PhasesLength =>
        WarmUp + LatencyLength + AfterLatency + BlackholeLength + AfterBlackhole + DropLength + AfterDrop;

    public async Task<ScenarioReport> RunAsync(CancellationToken cancellationToken)
    {
        var report = new ScenarioReport(Name);
        var settings = context.Settings;
        var duration = settings.Duration ?? TimeSpan.FromSeconds(Math.Max(PhasesLength.TotalSeconds + 2, Operations / 100.0));
        report.Summary["seed"] = settings.Seed;
        report.Summary["operationsRequested"] = Operations;

        var (database, launch) = await context.PrepareAsync(Name, cancellationToken);
        await using var databaseScope = database;
        var target = new NpgsqlConnectionStringBuilder(database.NodeConnectionString);
        await using var proxy = LinkProxy.Start(target.Host!, target.Port);
        var proxied = new NpgsqlConnectionStringBuilder(database.NodeConnectionString) { Host = "127.0.0.1", Port = proxy.Port };
        await using var fleet = new NodeFleet(launch, context.Http);
        await using var proxiedFleet = new NodeFleet(launch with { ConnectionString = proxied.ConnectionString }, context.Http);
        var clock = Stopwatch.StartNew();

        var api = await fleet.StartAsync("stall-api", NodeRole.Api, cancellationToken);
        var workers = Enumerable.Range(1, DirectWorkers).Select(n => fleet.StartWithoutWaiting($"stall-worker-{n}", NodeRole.Worker)).ToList();
        var stalled = proxiedFleet.StartWithoutWaiting(StalledNode, NodeRole.Worker);
        foreach (var worker in workers.Append(stalled))
        {
            await fleet.WaitUntilReadyAsync(worker, cancellationToken);
        }

        await using var sampler = new RunningSampler(database);
        var client = context.Client(api, clock);
        Console.WriteLine($"  submitting {Operations} operations over at least {duration.TotalSeconds:0} s with {settings.Clients} clients; " +
                          $"{StalledNode} reaches PostgreSQL through a proxy on port {proxy.Port}");
        using var loadCancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var load = SubmitLoadAsync(client, duration, report, loadCancellation.Token);
        Phases phases;
        try
        {
            phases = await BreakTheLinkAsync(proxy, database, client, report, cancellationToken);
        }
        finally
        {
            proxy.Pass();
            if (!load.IsCompleted && cancellationToken.IsCancellationRequested)
            {
                await loadCancellation.CancelAsync();
            }
        }

        await load;
        long unfinishedAtLoadEnd = await database.CountUnfinishedAsync(cancellationToken);
        Console.WriteLine($"  load done: {_accepted.Count} accepted; waiting until the {unfinishedAtLoadEnd} unfinished operations are terminal");
        var waited = await database.WaitUntilAllTerminalAsync(TerminalDeadlineAfterLoad, cancellationToken);
        if (waited is null)
        {
            report.Violation("all-terminal-in-time",
                $"{await database.CountUnfinishedAsync(cancellationToken)} operations were still not terminal {TerminalDeadlineAfterLoad.TotalSeconds:0} s after the load");
        }

        report.Summary["loadSeconds"] = Math.Round(duration.TotalSeconds, 1);
        report.Summary["kills"] = 0;
        report.Summary["unfinishedAtLoadEnd"] = unfinishedAtLoadEnd;
        report.Summary["loadEndToAllTerminalSeconds"] = waited is null ? null : Math.Round(waited.Value.TotalSeconds, 1);
        report.Summary["submitRetries"] = new JsonObject { ["unavailable"] = _unavailableRetries, ["transportErrors"] = _transportRetries };
        report.Summary["proxy"] = new JsonObject
        {
            ["connectionsAccepted"] = proxy.Accepted,
            ["acceptedWhileBlackholed"] = proxy.AcceptedWhileBlackholed,
            ["resetByTheDrop"] = proxy.Reset,
        };

        // No restart: the very process that was cut off is still there.
        foreach (var node in workers.Append(stalled).Append(api).Where(n => n.HasExited))
        {
            report.Violation("nodes-still-running", $"node {node.NodeId} exited with {node.ExitCode}; see {node.StderrPath}");
        }

        await sampler.StopAsync(report);
        await CheckAsync(report, database, phases, cancellationToken);
        CheckStalledNodeLog(report, stalled, phases);
        return report;
    }

    /// <summary>Latency, then a blackhole, then a drop, each followed by a healed link; when each began and ended by the database's clock.</summary>
    private async Task<Phases> BreakTheLinkAsync(LinkProxy proxy, ScenarioDatabase database, ApiClient client, ScenarioReport report,
        CancellationToken cancellationToken)
    {
        await Task.Delay(WarmUp - MediumSleepsAhead, cancellationToken);
        await SubmitBurstAsync(client, "latency", MediumSleepMs, report, cancellationToken);
        await Task.Delay(MediumSleepsAhead, cancellationToken);
        Console.WriteLine($"  {LatencyPerChunk.TotalMilliseconds:0} ms latency per chunk for {LatencyLength.TotalSeconds:0} s");
        var latencyStart = await AttemptTimeline.DatabaseNowAsync(database, cancellationToken);
        proxy.AddLatency(LatencyPerChunk);
        await Task.Delay(LatencyLength, cancellationToken);
        proxy.Pass();
        var latencyEnd = await AttemptTimeline.DatabaseNowAsync(database, cancellationToken);

        await Task.Delay(AfterLatency - LongSleepsAhead, cancellationToken);
        await SubmitBurstAsync(client, "blackhole", LongSleepMs, report, cancellationToken);
        await Task.Delay(LongSleepsAhead, cancellationToken);
        Console.WriteLine($"  blackhole for {BlackholeLength.TotalSeconds:0} s");
        var blackholeStart = await AttemptTimeline.DatabaseNowAsync(database, cancellationToken);
        proxy.Blackhole();
        await Task.Delay(Settle, cancellationToken);
        var heldAtBlackhole = await database.RunningHeldByAsync(StalledNode, cancellationToken);
        await Task.Delay(BlackholeLength - Settle, cancellationToken);
        proxy.Pass();
        var blackholeEnd = await AttemptTimeline.DatabaseNowAsync(database, cancellationToken);

        await Task.Delay(AfterBlackhole, cancellationToken);
        Console.WriteLine($"  connections dropped and refused for {DropLength.TotalSeconds:0} s");
        var dropStart = await AttemptTimeline.DatabaseNowAsync(database, cancellationToken);
        proxy.Drop();
        await Task.Delay(Settle, cancellationToken);
        var heldAtDrop = await database.RunningHeldByAsync(StalledNode, cancellationToken);
        await Task.Delay(DropLength - Settle, cancellationToken);
        proxy.Pass();
        var dropEnd = await AttemptTimeline.DatabaseNowAsync(database, cancellationToken);
        await Task.Delay(AfterDrop, cancellationToken);
        Console.WriteLine("  link healed");
        return new Phases(new Window(latencyStart, latencyEnd), new Window(blackholeStart, blackholeEnd), heldAtBlackhole,
            new Window(dropStart, dropEnd), heldAtDrop);
    }

    private async Task SubmitBurstAsync(ApiClient client, string phase, int durationMs, ScenarioReport report, CancellationToken cancellationToken)
    {
        var command = new SleepCommand(durationMs, 0, FailPermanently: false);
        var options = new ParallelOptions { MaxDegreeOfParallelism = context.Settings.Clients, CancellationToken = cancellationToken };
        await Parallel.ForEachAsync(Enumerable.Range(0, BurstSleeps), options, async (i, ct) =>
        {
            var outcome = await client.SubmitAsync(command.Route, command.Json, $"stall-{phase}-burst-{i}", MaxSubmitTries, ct);
            if (outcome.Final.Status is 202 or 200 && outcome.Final.OperationId is { } id)
            {
                _accepted[id] = command;
            }
            else
            {
                report.Violation("submit-accepted", $"POST /{command.Route} {command.Json}: {outcome.Final.Describe()}");
            }
        });
    }

    /// <summary>Submits sleeps to the api node, paced over <paramref name="duration"/>.</summary>
    private async Task SubmitLoadAsync(ApiClient client, TimeSpan duration, ScenarioReport report, CancellationToken cancellationToken)
    {
        var settings = context.Settings;
        var pacing = TimeSpan.FromTicks(duration.Ticks / Operations);
        var start = Stopwatch.StartNew();
        int next = -1;
        await Task.WhenAll(Enumerable.Range(0, settings.Clients).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < Operations)
            {
                var due = pacing * i - start.Elapsed;
                if (due > TimeSpan.Zero)
                {
                    await Task.Delay(due, cancellationToken);
                }

                var command = StallMix.Next(settings.Seed, i);
                var outcome = await client.SubmitAsync(command.Route, command.Json, $"stall-{i}", MaxSubmitTries, cancellationToken);
                Interlocked.Add(ref _unavailableRetries, outcome.UnavailableAnswers);
                Interlocked.Add(ref _transportRetries, outcome.TransportErrors);
                if (outcome.Final.Status is 202 or 200 && outcome.Final.OperationId is { } id)
                {
                    _accepted[id] = command;
                }
                else
                {
                    report.Violation("submit-accepted", $"POST /{command.Route} {command.Json}: {outcome.Final.Describe()}");
                }
            }
        }, cancellationToken)));
    }

    private async Task CheckAsync(ScenarioReport report, ScenarioDatabase database, Phases phases, CancellationToken cancellationToken)
    {
        var rows = await database.ReadOperationsAsync(cancellationToken);
        var history = (await HistoryEntry.ReadAllAsync(database, cancellationToken)).ToLookup(e => e.Id);
        long extra = 0;
        int failedAfterLostLeases = 0;
        foreach (var (id, sleep) in _accepted)
        {
            if (!rows.TryGetValue(id, out var row))
            {
                report.Violation("no-accepted-operation-lost", $"{id} was answered 202 but is not in the database");
                continue;
            }

            report.Require(row.IsTerminal, "every-operation-terminal", () => $"{id} is still {row.Status} (attempt {row.Attempts})");
            report.Require(row.LockedBy is null, "no-lease-left-behind", () => $"{id} is {row.Status} and locked by {row.LockedBy}");
            extra += Math.Max(0, row.Attempts - sleep.ExpectedAttempts);
            var entries = history[id].ToList();
            if (row.Status == "failed" && row.ErrorType == ProblemTypes.LeaseExpired && row.Attempts >= row.MaxAttempts)
            {
                failedAfterLostLeases++;
                continue;
            }

            if (row.Status != "succeeded")
            {
                report.Violation("sleeps-succeed", $"{id} (failTimes {sleep.FailTimes}) ended {row.Status} ({row.ErrorType}) after {row.Attempts} attempts");
                continue;
            }

            // Fencing: the stored result is the last attempt's, and no attempt whose lease was rescued stored anything.
            long? resultAttempt = row.ResultJson is null ? null : JsonNode.Parse(row.ResultJson)?["attempt"]?.GetValue<long>();
            var lost = entries.Where(e => e.Outcome == HistoryEntry.LeaseLost).Select(e => e.Attempt).ToHashSet();
            var succeeded = entries.Where(e => e.Outcome == "succeeded").ToList();
            report.Require(resultAttempt == row.Attempts && succeeded.Count == 1 && succeeded[0].Attempt == row.Attempts && !lost.Contains(row.Attempts),
                "no-result-from-a-rescued-attempt",
                () => $"{id} has result {row.ResultJson} on attempt {row.Attempts}; its history: {Describe(entries)}");
        }

        CheckHeld(report, "blackhole", phases.HeldAtBlackhole, rows, history, finishedElsewhere: true);
        // The drop is short: its operations may wait for the stalled worker to come back, as long as a later attempt ends them.
        CheckHeld(report, "drop", phases.HeldAtDrop, rows, history, finishedElsewhere: false);

        var all = history.SelectMany(g => g).ToList();
        foreach (var entry in all.Where(e => e.Outcome == HistoryEntry.LeaseLost && e.Node != StalledNode))
        {
            report.Violation("no-lease-rescued-from-a-node-with-a-sound-link",
                $"{entry.Id} attempt {entry.Attempt} of {entry.Node}, which reaches PostgreSQL directly, was rescued at {entry.EndedAt:O}");
        }

        var latency = phases.Latency;
        var lostInLatency = all.Where(e => e.Outcome == HistoryEntry.LeaseLost && e.EndedAt is { } at && latency.Contains(at, Lease)).ToList();
        foreach (var entry in lostInLatency)
        {
            report.Violation("latency-loses-no-lease", $"{entry.Id} attempt {entry.Attempt} of {entry.Node} was rescued at {entry.EndedAt:O}, " +
                                                       $"with {LatencyPerChunk.TotalMilliseconds:0} ms latency from {latency.Start:O} to {latency.End:O}");
        }

        int completedInLatency = CompletedBy(all, latency.Start, latency.End);
        report.Require(completedInLatency > 0, "work-completes-through-latency",
            () => $"{StalledNode} completed nothing between {latency.Start:O} and {latency.End:O}, with {LatencyPerChunk.TotalMilliseconds:0} ms latency");

        // Back after each heal: the same process claims and completes new work.
        var afterBlackhole = FirstCompletionAfter(all, phases.Blackhole.End);
        var afterDrop = FirstCompletionAfter(all, phases.Drop.End);
        report.Require(afterBlackhole is not null && afterBlackhole < phases.Drop.Start, "rejoins-after-the-blackhole",
            () => $"{StalledNode} completed no attempt it started after the blackhole ended ({phases.Blackhole.End:O}) before the drop began");
        report.Require(afterDrop is not null, "rejoins-after-the-drop",
            () => $"{StalledNode} completed no attempt it started after the drop ended ({phases.Drop.End:O})");

        report.Summary["accepted"] = _accepted.Count;
        report.Summary["terminal"] = new JsonObject(_accepted.Keys.Select(id => rows.TryGetValue(id, out var r) ? r.Status : "missing")
            .GroupBy(s => s, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => KeyValuePair.Create(g.Key, (JsonNode?)g.Count())));
        report.Summary["failedAfterLostLeases"] = failedAfterLostLeases;
        report.Summary["extraExecutions"] = extra;
        report.Summary["rescues"] = all.Count(e => e.Outcome == HistoryEntry.LeaseLost);
        report.Summary["rescuesOfTheStalledNode"] = all.Count(e => e.Outcome == HistoryEntry.LeaseLost && e.Node == StalledNode);
        report.Summary["heldWhenBlackholed"] = phases.HeldAtBlackhole.Count;
        report.Summary["heldWhenDropped"] = phases.HeldAtDrop.Count;
        report.Summary["stalledNodeCompletions"] = new JsonObject
        {
            ["duringLatency"] = completedInLatency,
            ["duringBlackhole"] = CompletedBy(all, phases.Blackhole.Start, phases.Blackhole.End),
            ["afterBlackholeBeforeDrop"] = CompletedBy(all, phases.Blackhole.End, phases.Drop.Start),
            ["afterDrop"] = CompletedBy(all, phases.Drop.End, DateTime.MaxValue),
            ["total"] = all.Count(e => e.Outcome == "succeeded" && e.Node == StalledNode),
        };
        report.Summary["firstCompletionAfterHealSeconds"] = new JsonObject
        {
            ["blackhole"] = afterBlackhole is { } b ? Math.Round((b - phases.Blackhole.End).TotalSeconds, 2) : null,
            ["drop"] = afterDrop is { } d ? Math.Round((d - phases.Drop.End).TotalSeconds, 2) : null,
        };
        report.Summary["storedWithoutAcceptedAnswer"] = rows.Keys.Count(id => !_accepted.ContainsKey(id));
    }

    /// <summary>
    /// What the stalled node held when its link broke: that attempt's lease was rescued (never its result stored) and another
    /// node finished the operation.
    /// </summary>
    private static void CheckHeld(ScenarioReport report, string phase, Dictionary<Guid, int> held, Dictionary<Guid, StoredOperation> rows,
        ILookup<Guid, HistoryEntry> history, bool finishedElsewhere)
    {
        foreach (var (id, attempt) in held)
        {
            var entries = history[id].ToList();
            var stalledAttempt = entries.FirstOrDefault(e => e.Attempt == attempt && e.Node == StalledNode);
            report.Require(stalledAttempt?.Outcome == HistoryEntry.LeaseLost, "stalled-attempts-fenced-out",
                () => $"{id} attempt {attempt}, held by {StalledNode} when the {phase} began, ended {stalledAttempt?.Outcome ?? "(no entry)"}; " +
                      $"history: {Describe(entries)}");
            var final = entries.LastOrDefault(e => e.Outcome == "succeeded");
            bool consumed = rows.TryGetValue(id, out var row) && row.Status == "failed" && row.ErrorType == ProblemTypes.LeaseExpired;
            report.Require(consumed || (final is not null && final.Attempt > attempt && (!finishedElsewhere || final.Node != StalledNode)),
                finishedElsewhere ? "another-node-finishes-the-stalled-work" : "a-later-attempt-finishes-the-stalled-work",
                () => $"{id}, held by {StalledNode} on attempt {attempt} when the {phase} began, ended {row?.Status}; history: {Describe(entries)}");
        }
    }

    /// <summary>
    /// From the stalled node's own log: it cancelled its handlers before their leases ended (every long sleep it held when
    /// its link broke among them), and noticed the blackhole while it lasted (the listener's keepalive, the statements'
    /// timeouts).
    /// </summary>
    private void CheckStalledNodeLog(ScenarioReport report, NodeProcess stalled, Phases phases)
    {
        var log = NodeLog.Read(stalled);
        var stops = log.Select(e => (Entry: e, Match: HandlerStopped().Match(e.Text))).Where(x => x.Match.Success)
            .Select(x => (x.Entry.At, LeftMs: double.Parse(x.Match.Groups["left"].Value, CultureInfo.InvariantCulture))).ToList();
        foreach (var (at, left) in stops.Where(s => s.LeftMs <= 0))
        {
            report.Violation("stalled-handlers-stop-within-their-lease", $"{StalledNode} stopped a handler at {at:O}, {-left:0} ms after its lease ended");
        }

        var perPhase = new JsonObject();
        foreach (var (phase, window, held) in new[] { ("blackhole", phases.Blackhole, phases.HeldAtBlackhole), ("drop", phases.Drop, phases.HeldAtDrop) })
        {
            int heldSleeping = held.Keys.Count(id => _accepted.TryGetValue(id, out var sleep) && sleep.DurationMs == LongSleepMs);
            int stopped = stops.Count(s => window.Contains(s.At, Lease));
            report.Require(phase != "blackhole" || stopped >= heldSleeping, "stalled-handlers-stop-within-their-lease",
                () => $"{StalledNode} was running {heldSleeping} long sleeps when the {phase} began, but logged {stopped} handlers stopped before their lease ended");
            DateTime? First(Func<NodeLogEntry, bool> what) =>
                log.Where(e => window.Contains(e.At, Lease) && what(e)).Select(e => e.At).Min();
            double? After(DateTime? at) => at is { } t ? Math.Round((t - window.Start).TotalSeconds, 1) : null;
            var listener = First(e => e.Says("notification listener lost its connection"));
            var firstAbandon = First(e => e.Says("Renewals are not reaching the database"));
            report.Require(phase != "blackhole" || heldSleeping == 0 || firstAbandon is not null, "stalled-node-gives-up-its-leases",
                () => $"{StalledNode} held {heldSleeping} long sleeps when the {phase} began but logged no abandoned lease");
            if (phase == "blackhole")
            {
                report.Require(listener is { } l && l <= window.End, "listener-notices-the-blackhole",
                    () => $"{StalledNode}'s notification listener did not notice the {BlackholeLength.TotalSeconds:0} s blackhole while it lasted " +
                          $"({(listener is null ? "no reconnect logged" : $"it did {After(listener)} s in")})");
            }

            perPhase[phase] = new JsonObject
            {
                ["longSleepsRunning"] = heldSleeping,
                ["handlersStopped"] = stopped,
                ["noticedAfterSeconds"] = new JsonObject
                {
                    ["leaseAbandon"] = After(firstAbandon),
                    ["listener"] = After(listener),
                    ["statement"] = After(First(e => StatementFailed().IsMatch(e.Text))),
                },
            };
        }

        report.Summary["stalledNodeLog"] = new JsonObject
        {
            ["leaseAbandons"] = log.Count(e => e.Says("Renewals are not reaching the database")),
            ["handlersStoppedUnrenewed"] = stops.Count,
            ["minLeaseLeftAtStopMs"] = stops.Count == 0 ? null : Math.Round(stops.Min(s => s.LeftMs)),
            ["fencedOutWrites"] = log.Count(e => e.Says("lost its lease; its outcome was not stored")),
            ["handedBack"] = log.Select(e => HandedBack().Match(e.Text)).Where(m => m.Success)
                .Sum(m => int.Parse(m.Groups["count"].Value, CultureInfo.InvariantCulture)),
            ["blackhole"] = perPhase["blackhole"]?.DeepClone(),
            ["drop"] = perPhase["drop"]?.DeepClone(),
        };
    }

    private static int CompletedBy(List<HistoryEntry> entries, DateTime from, DateTime to) =>
        entries.Count(e => e.Outcome == "succeeded" && e.Node == StalledNode && e.EndedAt is { } at && at >= from && at < to);

    /// <summary>When the stalled node first completed an attempt it started after <paramref name="since"/>.</summary>
    private static DateTime? FirstCompletionAfter(List<HistoryEntry> entries, DateTime since) =>
        entries.Where(e => e.Outcome == "succeeded" && e.Node == StalledNode && e.StartedAt >= since).Select(e => e.EndedAt).Min();

    private static string Describe(List<HistoryEntry> entries) =>
        string.Join("; ", entries.OrderBy(e => e.StartedAt).Select(e => $"#{e.Attempt} {e.Node} {e.Outcome} {e.StartedAt:HH:mm:ss.fff}-{e.EndedAt:HH:mm:ss.fff}"));

    [GeneratedRegex(@"Handler stopped with its lease unrenewed, (?<left>-?\d+) ms before the lease ends")]
    private static partial Regex HandlerStopped();

    [GeneratedRegex(@"Handed back (?<count>\d+) operations")]
    private static partial Regex HandedBack();

    /// <summary>What the node logs when a statement failed: a renewal, a claim, an outcome, lease rescue, or a write whose outcome it must settle.</summary>
    [GeneratedRegex("Renewing leases failed|Claiming operations failed|Storing an outcome failed|Lease rescue failed|The connection failed after")]
    private static partial Regex StatementFailed();

    private sealed record Window(DateTime Start, DateTime End)
    {
        public bool Contains(DateTime? at, TimeSpan after) => at is { } t && t >= Start && t <= End + after;
    }

    private sealed record Phases(Window Latency, Window Blackhole, Dictionary<Guid, int> HeldAtBlackhole, Window Drop, Dictionary<Guid, int> HeldAtDrop);
}

/// <summary>The network-stall scenario's sleeps, a pure function of the seed and the submit's number.</summary>
internal static class StallMix
{
    public static SleepCommand Next(int seed, int index)
    {
        var random = new Random(unchecked((seed * 1_000_003) + index));
        double kind = random.NextDouble();
        return kind switch
        {
            // Long enough that the stalled worker is in the middle of some when its link breaks.
            < 0.05 => new SleepCommand(random.Next(1500, 3001), 0, FailPermanently: false),
            < 0.30 => new SleepCommand(random.Next(300, 1501), 0, FailPermanently: false),
            < 0.40 => new SleepCommand(random.Next(0, 201), 1, FailPermanently: false),
            _ => new SleepCommand(random.Next(0, 301), 0, FailPermanently: false),
        };
    }
}
