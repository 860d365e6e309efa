using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using PollingApi.FaultTests.Infrastructure;
using PollingApi.Harness;

namespace PollingApi.FaultTests.Scenarios;

/// <summary>
/// PostgreSQL stops under load and starts again, the nodes keep running: while it is down every submit and poll
/// is a well-formed 503 (never a 202, never a 500), readiness fails but liveness holds, the worker does not spin;
/// once it is back the same processes accept work again and finish everything they accepted. Half the clients submit
/// without an Idempotency-Key (through group commit), so a commit cut off by the stop is seen as a client sees it: every
/// stored operation was answered 2xx or 503 commit-outcome-unknown naming it, never a plain 503 ("nothing was stored").
/// Two more nodes start while it is down: one must wait for it (live, not ready, 503s) and become ready by itself when it
/// is back, then take submits; the other, with a short <c>Operations:StartupDatabaseTimeout</c>, must give up and exit 1.
/// </summary>
internal sealed partial class OutageScenario(ScenarioContext context)
{
    public const string Name = "outage";

    private const int Clients = 8;
    private const double MaxWorkerCoresDuringOutage = 0.5;
    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan ClientPause = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan RetryPause = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan HealthProbeInterval = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan RecoveryDeadline = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan LoadAfterRecovery = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan TerminalDeadline = TimeSpan.FromSeconds(60);

    private const string StartedDuringOutageId = "outage-started-while-down";
    private const string GivingUpId = "outage-gives-up";
    private const string GiveUpTimeout = "00:00:02";
    private static readonly TimeSpan StartedDuringOutageReadyDeadline = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan GiveUpDeadline = TimeSpan.FromSeconds(30);

    private readonly ConcurrentQueue<RecordedAnswer> _answers = new();
    private readonly ConcurrentDictionary<Guid, bool> _accepted = new();
    private readonly ConcurrentDictionary<Guid, bool> _outcomeUnknown = new();
    private int _storedDespitePlain503;
    private int _nextKey;

    public async Task<ScenarioReport> RunAsync(CancellationToken cancellationToken)
    {
        var report = new ScenarioReport(Name);
        var outageLength = context.Settings.Duration ?? TimeSpan.FromSeconds(10);
        var (database, launch) = await context.PrepareAsync(Name, cancellationToken);
        await using var databaseScope = database;
        await using var sampler = new RunningSampler(database);
        await using var fleet = new NodeFleet(launch, context.Http);
        var clock = Stopwatch.StartNew();

        var api = fleet.StartWithoutWaiting("outage-api", NodeRole.Api);
        var worker = fleet.StartWithoutWaiting("outage-worker", NodeRole.Worker);
        await fleet.WaitUntilReadyAsync(api, cancellationToken);
        await fleet.WaitUntilReadyAsync(worker, cancellationToken);
        var client = context.Client(api, clock);

        using var stopLoad = new CancellationTokenSource();
        var load = Task.WhenAll(Enumerable.Range(0, Clients).Select(n =>
            Task.Run(() => SubmitAndPollAsync(client, context.Settings.Seed + n, keyed: n % 2 == 0, stopLoad.Token, cancellationToken),
                CancellationToken.None)));
        Outage outage;
        try
        {
            Console.WriteLine($"  load running; stopping PostgreSQL in {WarmUp.TotalSeconds:0} s for {outageLength.TotalSeconds:0} s");
            await Task.WhenAny(load, Task.Delay(WarmUp, cancellationToken));
            report.Summary["acceptedBeforeOutage"] = _accepted.Count;
            outage = await StopAndStartPostgresAsync(outageLength, fleet, api, worker, clock, cancellationToken);
            var startedDuringOutageReady = ReadyAtAsync(outage.StartedDuringOutage, clock, cancellationToken);
            // The harness's own pooled connections died with the server.
            database.DataSource.Clear();
            Console.WriteLine($"  PostgreSQL is back after {(outage.StartEnd - outage.StopBegin).TotalSeconds:0.0} s; waiting for the nodes to accept work again");

            bool recovered = await Waiting.UntilAsync(() => Task.FromResult(FirstAcceptedAfter(outage.StartEnd) is not null),
                RecoveryDeadline, TimeSpan.FromMilliseconds(100), cancellationToken);
            if (recovered)
            {
                await Task.WhenAny(load, Task.Delay(LoadAfterRecovery, cancellationToken));
            }
            else
            {
                report.Violation("submits-accepted-again", $"no submit was answered 202 within {RecoveryDeadline.TotalSeconds:0} s of PostgreSQL's restart");
            }

            await CheckStartedDuringOutageAsync(report, outage, await startedDuringOutageReady, clock, cancellationToken);
        }
        finally
        {
            // Also when the scenario failed: no client may go on sending requests to nodes that are about to be killed.
            await stopLoad.CancelAsync();
        }

        await load;
        var startEnd = outage.StartEnd;
        var terminalIn = await database.WaitUntilAllTerminalAsync(TerminalDeadline - (clock.Elapsed - startEnd), cancellationToken);
        if (terminalIn is null)
        {
            report.Violation("all-terminal-after-recovery",
                $"{await database.CountUnfinishedAsync(cancellationToken)} operations were not terminal {TerminalDeadline.TotalSeconds:0} s after PostgreSQL's restart");
        }

        await sampler.StopAsync(report);
        var windows = new Windows(outage.StopBegin, outage.StopEnd, outage.StartBegin, outage.StartEnd);
        CheckAnswers(report, windows);
        await CheckStoredAsync(report, database, client, cancellationToken);
        CountSettledCommits(report, [api, worker, outage.StartedDuringOutage]);
        foreach (var node in new[] { api, worker, outage.StartedDuringOutage }.Where(n => n.HasExited))
        {
            report.Violation("nodes-survive-the-outage", $"node {node.NodeId} exited with {node.ExitCode}; see {node.StderrPath}");
        }

        double outageSeconds = (outage.StartBegin - outage.StopEnd).TotalSeconds;
        double workerCores = outage.WorkerCpu.TotalSeconds / outageSeconds;
        report.Require(workerCores < MaxWorkerCoresDuringOutage, "worker-does-not-spin",
            () => $"the worker used {outage.WorkerCpu.TotalSeconds:0.00} s of CPU in the {outageSeconds:0.0} s outage ({workerCores:P0} of one core)");

        report.Summary["outageSeconds"] = Math.Round(outageSeconds, 1);
        report.Summary["accepted"] = _accepted.Count;
        report.Summary["duringOutage"] = Tally(_answers.Where(a => windows.Of(a.Answer) == Window.Outage));
        report.Summary["aroundStopAndStart"] = Tally(_answers.Where(a => windows.Of(a.Answer) == Window.Transition));
        report.Summary["storedDespitePlain503"] = _storedDespitePlain503;
        report.Summary["firstAcceptedAfterRestartSeconds"] = FirstAcceptedAfter(startEnd) is { } first ? Math.Round((first - startEnd).TotalSeconds, 2) : null;
        report.Summary["allTerminalAfterRestartSeconds"] = terminalIn is null ? null : Math.Round((clock.Elapsed - startEnd).TotalSeconds, 1);
        report.Summary["workerCpuPercentOfOneCoreDuringOutage"] = Math.Round(workerCores * 100, 1);
        report.Summary["apiCpuPercentOfOneCoreDuringOutage"] = Math.Round(outage.ApiCpu.TotalSeconds / outageSeconds * 100, 1);
        return report;
    }

    /// <summary>
    /// Stops PostgreSQL, starts two nodes while it is down, keeps it down for <paramref name="length"/> (and until the node
    /// with the short start-up timeout has exited, at most <see cref="GiveUpDeadline"/>) while probing the nodes' health and
    /// measuring their CPU time, and starts it again (also when this fails half-way, for the scenarios that follow).
    /// </summary>
    private async Task<Outage> StopAndStartPostgresAsync(TimeSpan length, NodeFleet fleet, NodeProcess api, NodeProcess worker, Stopwatch clock,
        CancellationToken cancellationToken)
    {
        bool serverDown = false;
        try
        {
            var stopBegin = clock.Elapsed;
            serverDown = true;
            // Immediate, as a crash of the server or its host: backends die wherever they are, commits in flight included.
            await context.Cluster.StopServerAsync(immediate: true, cancellationToken);
            var stopEnd = clock.Elapsed;
            var workerCpuAtStop = worker.ReadCpuTime();
            var apiCpuAtStop = api.ReadCpuTime();

            // A node (re)started while the database is down, as after a host reboot during the outage; and one told to give up.
            var startedDuringOutage = fleet.StartWithoutWaiting(StartedDuringOutageId, NodeRole.All);
            var givingUpStartedAt = clock.Elapsed;
            var givingUp = fleet.StartWithoutWaiting(GivingUpId, NodeRole.All,
                new Dictionary<string, string>(StringComparer.Ordinal) { ["Operations__StartupDatabaseTimeout"] = GiveUpTimeout });

            using var stopProbes = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var probes = ProbeHealthAsync([api, worker], clock, stopProbes.Token);
            var startingProbes = ProbeStartingNodeAsync(startedDuringOutage, clock, stopProbes.Token);
            // Down until the giving-up node gave up: back earlier, the database would let it start.
            async Task<TimeSpan?> ExitedAfterAsync() =>
                await givingUp.WaitForExitAsync(GiveUpDeadline, cancellationToken) ? clock.Elapsed - givingUpStartedAt : null;
            var gaveUp = ExitedAfterAsync();
            await Task.WhenAll(Task.Delay(length, cancellationToken), gaveUp);
            var givingUpExitedAfter = await gaveUp;
            var workerCpu = worker.ReadCpuTime() - workerCpuAtStop;
            var apiCpu = api.ReadCpuTime() - apiCpuAtStop;
            var startBegin = clock.Elapsed;
            await stopProbes.CancelAsync();
            await Task.WhenAll(probes, startingProbes);

            await context.Cluster.StartServerAsync(cancellationToken);
            serverDown = false;
            return new Outage(stopBegin, stopEnd, startBegin, clock.Elapsed, workerCpu, apiCpu, startedDuringOutage, givingUp, givingUpExitedAfter);
        }
        finally
        {
            if (serverDown && !cancellationToken.IsCancellationRequested)
            {
                await context.Cluster.StartServerAsync(CancellationToken.None);
            }
        }
    }

    /// <summary>When the first submit sent after <paramref name="since"/> was answered 202; null if none was yet.</summary>
    private TimeSpan? FirstAcceptedAfter(TimeSpan since) =>
        _answers.Where(a => a.Kind == "submit" && a.Answer.Status == 202 && a.Answer.StartedAt >= since)
            .Select(a => (TimeSpan?)a.Answer.EndedAt).Min();

    /// <summary>
    /// One client: submit a sleep and poll it, pause, repeat. A keyed client retries a submit answered 503 (or not
    /// answered) with the same idempotency key; a keyless one retries a plain 503 ("nothing was stored") as a new submit
    /// and takes a 503 commit-outcome-unknown's operation as its own to look at. The client's last operation is polled
    /// in between, so both kinds of request keep arriving while the database is down. Every answer is recorded.
    /// </summary>
    private async Task SubmitAndPollAsync(ApiClient client, int seed, bool keyed, CancellationToken stop, CancellationToken cancellationToken)
    {
        var random = new Random(seed);
        Guid? last = null;

        async Task PollLastAsync()
        {
            if (last is { } polled)
            {
                _answers.Enqueue(new RecordedAnswer("poll", await client.GetAsync($"v1/operations/{polled}", cancellationToken)));
            }
        }

        try
        {
            while (!stop.IsCancellationRequested)
            {
                var command = new SleepCommand(random.Next(0, 201), 0, FailPermanently: false);
                string? key = keyed ? $"outage-{Interlocked.Increment(ref _nextKey).ToString(CultureInfo.InvariantCulture)}" : null;
                bool hadPlain503 = false;
                bool mayHaveStored = false;
                while (!stop.IsCancellationRequested)
                {
                    // A request in flight is not cancelled when the load stops: its answer must be seen, it may be a 202.
                    var answer = await client.PostAsync(command.Route, command.Json, key, cancellationToken);
                    _answers.Enqueue(new RecordedAnswer("submit", answer));
                    if (answer.Status is 202 or 200 && answer.OperationId is { } id)
                    {
                        _accepted[id] = true;
                        if (hadPlain503 && !mayHaveStored && answer.Replayed)
                        {
                            // Only plain 503s came before, yet the key's operation was already stored by one of them.
                            Interlocked.Increment(ref _storedDespitePlain503);
                        }

                        last = id;
                        break;
                    }

                    if (answer.Status == 503 && answer.ProblemType == ProblemTypes.CommitOutcomeUnknown && answer.ProblemOperationId is { } unknown)
                    {
                        _outcomeUnknown[unknown] = true;
                        mayHaveStored = true;
                        if (!keyed)
                        {
                            // Without a key, submitting again could store it twice: look at its Location instead.
                            last = unknown;
                            break;
                        }
                    }
                    else if (answer.Status == 503)
                    {
                        hadPlain503 = true;
                    }
                    else if (answer.IsTransportError)
                    {
                        mayHaveStored = true;
                    }
                    else
                    {
                        break;
                    }

                    await PollLastAsync();
                    await Task.Delay(RetryPause, stop);
                }

                await PollLastAsync();
                await Task.Delay(ClientPause, stop);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The load phase is over.
        }
    }

    /// <summary>
    /// A node started while the database is down: once it listens (before, its connections are refused and nothing is
    /// recorded), one submit, which must be the usual 503, then its health twice a second like the other nodes.
    /// </summary>
    private async Task ProbeStartingNodeAsync(NodeProcess node, Stopwatch clock, CancellationToken stop)
    {
        var client = context.Client(node, clock);
        try
        {
            while (true)
            {
                var live = await client.GetAsync("health/live", stop);
                if (!live.IsTransportError)
                {
                    _answers.Enqueue(new RecordedAnswer("live", live, node.NodeId));
                    break;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(100), stop);
            }

            var command = new SleepCommand(0, 0, FailPermanently: false);
            _answers.Enqueue(new RecordedAnswer("submit", await client.PostAsync(command.Route, command.Json, null, stop), node.NodeId));
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            return;
        }

        await ProbeHealthAsync([node], clock, stop);
    }

    /// <summary>When <paramref name="node"/>'s <c>/health/ready</c> first answered 200 (polled every 100 ms), or null if it did not in time.</summary>
    private async Task<TimeSpan?> ReadyAtAsync(NodeProcess node, Stopwatch clock, CancellationToken cancellationToken) =>
        await node.WaitUntilReadyAsync(context.Http, StartedDuringOutageReadyDeadline, TimeSpan.FromMilliseconds(100), cancellationToken)
            == Readiness.Ready
            ? clock.Elapsed
            : null;

    /// <summary>
    /// The node started while the database was down: it answered while down (checked with the others' answers), logged
    /// its retries as warnings without stack traces, became ready by itself after the restart and then took a submit.
    /// The giving-up node exited 1 and said why.
    /// </summary>
    private async Task CheckStartedDuringOutageAsync(ScenarioReport report, Outage outage, TimeSpan? readyAt, Stopwatch clock,
        CancellationToken cancellationToken)
    {
        var node = outage.StartedDuringOutage;
        var windows = new Windows(outage.StopBegin, outage.StopEnd, outage.StartBegin, outage.StartEnd);
        int answeredWhileDown = _answers.Count(a => a.Node == node.NodeId && windows.Of(a.Answer) == Window.Outage);
        report.Require(answeredWhileDown > 0, "started-while-down-answers",
            () => $"node {node.NodeId} answered nothing while PostgreSQL was down; see {node.StdoutPath}");
        report.Summary["startedWhileDownReadyAfterRestartSeconds"] = readyAt is { } ready ? Math.Round((ready - outage.StartEnd).TotalSeconds, 2) : null;
        if (readyAt is null)
        {
            report.Violation("started-while-down-becomes-ready",
                $"node {node.NodeId} was not ready within {StartedDuringOutageReadyDeadline.TotalSeconds:0} s of PostgreSQL's restart " +
                $"(exited: {node.HasExited}, exit code {node.ExitCode}). Its last output:{Environment.NewLine}{node.Tail()}");
        }
        else
        {
            var command = new SleepCommand(0, 0, FailPermanently: false);
            var answer = await context.Client(node, clock).PostAsync(command.Route, command.Json, $"outage-{node.NodeId}", cancellationToken);
            _answers.Enqueue(new RecordedAnswer("submit", answer, node.NodeId));
            if (answer.Status is 202 or 200 && answer.OperationId is { } id)
            {
                _accepted[id] = true;
            }
            else
            {
                report.Violation("started-while-down-takes-submits", $"node {node.NodeId} answered a submit after it was ready: {answer.Describe()}");
            }
        }

        string log = File.Exists(node.StdoutPath) ? await File.ReadAllTextAsync(node.StdoutPath, cancellationToken) : "";
        int warnings = StartupWarningLine().Count(log);
        report.Summary["startedWhileDownStartupWarnings"] = warnings;
        report.Require(warnings > 0, "started-while-down-warns", () => $"node {node.NodeId} logged no start-up warning; see {node.StdoutPath}");
        report.Require(!StackTraceLine().IsMatch(log), "started-while-down-logs-no-stack-trace",
            () => $"node {node.NodeId} logged a stack trace: {StackTraceLine().Match(log).Value.Trim()}; see {node.StdoutPath}");

        var givingUp = outage.GivingUp;
        report.Summary["startupTimeoutExitCode"] = givingUp.ExitCode;
        report.Summary["startupTimeoutExitSeconds"] = outage.GivingUpExitedAfter is { } exited ? Math.Round(exited.TotalSeconds, 1) : null;
        report.Require(givingUp.ExitCode == 1, "startup-timeout-exits-1",
            () => givingUp.HasExited
                ? $"node {givingUp.NodeId} exited with {givingUp.ExitCode}; see {givingUp.StdoutPath}"
                : $"node {givingUp.NodeId} was still running {GiveUpDeadline.TotalSeconds:0} s after it started, with Operations:StartupDatabaseTimeout={GiveUpTimeout}");
        string expected = $"within Operations:StartupDatabaseTimeout ({GiveUpTimeout})";
        bool said = await Waiting.UntilAsync(
            async () => File.Exists(givingUp.StdoutPath) && (await File.ReadAllTextAsync(givingUp.StdoutPath, cancellationToken)).Contains(expected, StringComparison.Ordinal),
            TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(100), cancellationToken);
        report.Require(!givingUp.HasExited || said, "startup-timeout-says-why",
            () => $"node {givingUp.NodeId} exited without logging \"{expected}\"; its last output:{Environment.NewLine}{givingUp.Tail()}");
    }

    private async Task ProbeHealthAsync(IReadOnlyList<NodeProcess> nodes, Stopwatch clock, CancellationToken stop)
    {
        try
        {
            while (!stop.IsCancellationRequested)
            {
                foreach (var node in nodes)
                {
                    var client = context.Client(node, clock);
                    _answers.Enqueue(new RecordedAnswer("ready", await client.GetAsync("health/ready", stop), node.NodeId));
                    _answers.Enqueue(new RecordedAnswer("live", await client.GetAsync("health/live", stop), node.NodeId));
                }

                await Task.Delay(HealthProbeInterval, stop);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The outage is over.
        }
    }

    private void CheckAnswers(ScenarioReport report, Windows windows)
    {
        foreach (var (kind, answer, node) in _answers)
        {
            var window = windows.Of(answer);
            string where = $"{kind}{(node is null ? "" : " of " + node)} at {answer.StartedAt.TotalSeconds:0.0} s ({window})";
            report.Require(!answer.IsTransportError, "nodes-always-answer", () => $"{where}: {answer.Describe()}");
            report.Require(answer.Status is < 500 or 503, "never-a-500", () => $"{where}: {answer.Describe()}");
            if (window != Window.Outage)
            {
                continue;
            }

            switch (kind)
            {
                case "submit" or "poll":
                    report.Require(answer.Status != 202 && answer.Status != 200, "no-202-while-the-database-is-down",
                        () => $"{where}: {answer.Describe()}");
                    // A submit whose commit the stop cut off may not know whether it was stored, and says so, naming it.
                    bool unknownOutcome = kind == "submit" && answer.ProblemType == ProblemTypes.CommitOutcomeUnknown
                                          && answer.ProblemOperationId is { } id && answer.Location?.EndsWith($"/v1/operations/{id}", StringComparison.Ordinal) == true;
                    report.Require(answer.IsWellFormedUnavailable && (answer.ProblemType == ProblemTypes.DatabaseUnavailable || unknownOutcome),
                        "503-with-retry-after-and-problem-while-down", () => $"{where}: {answer.Describe()}");
                    break;
                case "ready":
                    report.Require(answer.Status == 503, "ready-fails-while-down", () => $"{where}: {answer.Describe()}");
                    break;
                case "live":
                    report.Require(answer.Status == 200, "live-holds-while-down", () => $"{where}: {answer.Describe()}");
                    break;
            }
        }
    }

    private async Task CheckStoredAsync(ScenarioReport report, ScenarioDatabase database, ApiClient client, CancellationToken cancellationToken)
    {
        var rows = await database.ReadOperationsAsync(cancellationToken);
        foreach (var id in _accepted.Keys)
        {
            if (!rows.TryGetValue(id, out var row))
            {
                report.Violation("no-202-for-an-unstored-operation", $"{id} was answered 202 but is not in the database");
                continue;
            }

            report.Require(!row.IsTerminal || row.Status == "succeeded", "sleeps-succeed",
                () => $"sleep {id} ended {row.Status} ({row.ErrorType}) after {row.Attempts} attempts");
            report.Require(row.LockedBy is null || !row.IsTerminal, "no-lease-left-behind", () => $"{id} is {row.Status} and locked by {row.LockedBy}");
        }

        // "Nothing was stored" must be true: every stored operation was named to its client by a 2xx or a commit-outcome-unknown.
        foreach (var id in rows.Keys.Where(id => !_accepted.ContainsKey(id) && !_outcomeUnknown.ContainsKey(id)))
        {
            report.Violation("stored-only-when-answered", $"{id} is stored, but every submit that could have stored it was answered a plain 503 or nothing");
        }

        report.Require(_storedDespitePlain503 == 0, "stored-only-when-answered",
            () => $"{_storedDespitePlain503} keyed submits answered only plain 503s were found stored when retried");

        // A commit-outcome-unknown's Location tells the truth once the database is back: the operation, or 404.
        int unknownStored = 0;
        int unknownNotStored = 0;
        foreach (var id in _outcomeUnknown.Keys)
        {
            var answer = await client.GetAsync($"v1/operations/{id}", cancellationToken);
            bool stored = rows.ContainsKey(id);
            if (stored)
            {
                unknownStored++;
                report.Require(answer.Status is 200 or 202 && answer.OperationId == id, "unknown-outcome-location-shows-the-operation",
                    () => $"{id} is stored, but its Location answered {answer.Describe()}");
            }
            else
            {
                unknownNotStored++;
                report.Require(answer.Status == 404 && answer.ProblemType == ProblemTypes.OperationNotFound, "unknown-outcome-location-answers-404",
                    () => $"{id} is not stored, but its Location answered {answer.Describe()}");
            }
        }

        report.Summary["storedWithoutAcceptedAnswer"] = rows.Keys.Count(id => !_accepted.ContainsKey(id));
        report.Summary["commitOutcomeUnknownAnswers"] = new JsonObject
        {
            ["operations"] = _outcomeUnknown.Count,
            ["foundStored"] = unknownStored,
            ["foundNotStored"] = unknownNotStored,
        };
    }

    /// <summary>What the nodes logged of writes whose commit outcome they had to settle: how many rows were stored, how many written again.</summary>
    private static void CountSettledCommits(ScenarioReport report, IReadOnlyList<NodeProcess> nodes)
    {
        var settled = new JsonObject();
        foreach (var node in nodes)
        {
            string log = File.Exists(node.StdoutPath) ? File.ReadAllText(node.StdoutPath) : "";
            foreach (Match match in SettledLine().Matches(log))
            {
                string what = match.Groups["what"].Value.Contains("submit", StringComparison.Ordinal) ? "submits" : "outcomes";
                var entry = settled[what] as JsonObject ?? new JsonObject { ["settles"] = 0, ["stored"] = 0, ["writtenAgain"] = 0 };
                entry["settles"] = (int)entry["settles"]! + 1;
                entry["stored"] = (int)entry["stored"]! + int.Parse(match.Groups["stored"].Value, CultureInfo.InvariantCulture);
                entry["writtenAgain"] = (int)entry["writtenAgain"]! + int.Parse(match.Groups["written"].Value, CultureInfo.InvariantCulture);
                settled[what] = entry;
            }

            settled[node.NodeId + "StillUnknown"] = StillUnknownLine().Count(log);
        }

        report.Summary["settledCommits"] = settled;
    }

    [GeneratedRegex(@"Commit outcome of (?<what>.+?) was unknown and is settled: (?<stored>\d+) stored, (?<written>\d+) written again")]
    private static partial Regex SettledLine();

    [GeneratedRegex(@"Commit outcome of .+? is still unknown")]
    private static partial Regex StillUnknownLine();

    [GeneratedRegex(@"cannot be reached at start-up \(attempt \d+\)")]
    private static partial Regex StartupWarningLine();

    /// <summary>A frame of a .NET stack trace ("   at Npgsql.NpgsqlConnection.Open...").</summary>
    [GeneratedRegex(@"^\s+at \S+\(", RegexOptions.Multiline)]
    private static partial Regex StackTraceLine();

    private static JsonObject Tally(IEnumerable<RecordedAnswer> answers) =>
        new(answers.GroupBy(a => a.Kind, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => KeyValuePair.Create(g.Key, (JsonNode?)new JsonObject(g
                .GroupBy(a => a.Answer.IsTransportError ? "transportError" : a.Answer.Status.ToString(CultureInfo.InvariantCulture), StringComparer.Ordinal)
                .OrderBy(s => s.Key, StringComparer.Ordinal)
                .Select(s => KeyValuePair.Create(s.Key, (JsonNode?)s.Count()))))));

    private sealed record Outage(TimeSpan StopBegin, TimeSpan StopEnd, TimeSpan StartBegin, TimeSpan StartEnd, TimeSpan WorkerCpu, TimeSpan ApiCpu,
        NodeProcess StartedDuringOutage, NodeProcess GivingUp, TimeSpan? GivingUpExitedAfter);

    private sealed record RecordedAnswer(string Kind, ApiAnswer Answer, string? Node = null);

    private enum Window
    {
        Before,
        Transition,
        Outage,
        After,
    }

    /// <summary>
    /// When PostgreSQL was going down, down, and coming back. An answer counts as "during the outage" only if its
    /// whole request fell between the end of the stop and the start of the restart.
    /// </summary>
    private sealed record Windows(TimeSpan StopBegin, TimeSpan StopEnd, TimeSpan StartBegin, TimeSpan StartEnd)
    {
        public Window Of(ApiAnswer answer) =>
            answer.EndedAt <= StopBegin ? Window.Before
            : answer.StartedAt >= StopEnd && answer.EndedAt <= StartBegin ? Window.Outage
            : answer.StartedAt >= StartEnd ? Window.After
            : Window.Transition;
    }
}
