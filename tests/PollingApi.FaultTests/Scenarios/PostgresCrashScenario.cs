using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using PollingApi.FaultTests.Infrastructure;

namespace PollingApi.FaultTests.Scenarios;

/// <summary>
/// PostgreSQL crashes under load (<c>pg_ctl stop -m immediate</c>: no shutdown checkpoint, every backend killed wherever
/// it is, commits in flight included) and is started again, so it runs crash recovery from the WAL; more than once. Every
/// operation answered 202 must be there afterwards, and end as the crash scenario's invariants say.
/// </summary>
internal sealed class PostgresCrashScenario(ScenarioContext context)
{
    public const string Name = "pg-crash";

    /// <summary>How many operations the load submits without <c>--operations</c>.</summary>
    public const int DefaultOperations = 2000;

    /// <summary>What PostgreSQL logs when it starts on data it did not shut down: it replays the WAL.</summary>
    public const string RecoveryLine = "database system was not properly shut down; automatic recovery in progress";

    private const int NodeCount = 2;

    /// <summary>How long PostgreSQL stays down after a crash: a supervisor's restart.</summary>
    private static readonly TimeSpan DownTime = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Submits sent all at once just before each crash, besides the paced load: some are being written when the server dies,
    /// so that commits in flight meet the crash.
    /// </summary>
    private const int BurstSize = 64;

    /// <summary>How long after the burst is sent the crash is ordered (<c>pg_ctl</c> takes some milliseconds more to start).</summary>
    private static readonly TimeSpan BurstLead = TimeSpan.FromMilliseconds(10);

    /// <summary>One crash per this much load, at least two.</summary>
    private static readonly TimeSpan LoadPerCrash = TimeSpan.FromSeconds(20);

    private static readonly TimeSpan TerminalDeadlineAfterLastCrash = TimeSpan.FromSeconds(120);

    private int Operations => context.Settings.Operations ?? DefaultOperations;

    public async Task<ScenarioReport> RunAsync(CancellationToken cancellationToken)
    {
        var report = new ScenarioReport(Name);
        var settings = context.Settings;
        var duration = settings.Duration ?? TimeSpan.FromSeconds(Math.Max(30, Operations / 100.0));
        int crashCount = Math.Max(2, (int)(duration / LoadPerCrash));
        report.Summary["seed"] = settings.Seed;
        report.Summary["operationsRequested"] = Operations;

        var (database, launch) = await context.PrepareAsync(Name, cancellationToken);
        await using var databaseScope = database;
        await using var sampler = new RunningSampler(database);
        await using var fleet = new NodeFleet(launch, context.Http);
        var clock = Stopwatch.StartNew();

        NodeProcess[] nodes = [.. Enumerable.Range(1, NodeCount).Select(n => fleet.StartWithoutWaiting($"{Name}-{n}", NodeRole.All))];
        foreach (var node in nodes)
        {
            await fleet.WaitUntilReadyAsync(node, cancellationToken);
        }

        var client = context.Client(nodes[0], clock);
        IReadOnlyList<OpenedAccount> accounts = [];
        IReadOnlyList<AcceptedOperation> openings = [];
        if (!settings.SkipLedger)
        {
            (accounts, openings) = await AccountOpening.OpenAsync(client, database, report, Name, settings.Clients, cancellationToken);
        }

        Console.WriteLine($"  submitting {Operations} operations to {NodeCount} nodes over at least {duration.TotalSeconds:0} s with {settings.Clients} clients; " +
                          $"PostgreSQL crashes {crashCount} times, each {BurstLead.TotalMilliseconds:0} ms after a burst of {BurstSize} more");
        report.Summary["burstAtEachCrash"] = BurstSize;
        var load = new SpreadLoad(context, () => nodes, clock, Name);
        var loadStart = clock.Elapsed;
        using var loadCancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var submits = load.RunAsync(Operations, duration, accounts, loadCancellation.Token);
        var crashes = new List<Crash>();
        var bursts = new List<Task>();
        try
        {
            for (int k = 1; k <= crashCount; k++)
            {
                var due = loadStart + (duration * k / (crashCount + 1)) - clock.Elapsed;
                await Task.WhenAny(submits, Task.Delay(due > TimeSpan.Zero ? due : TimeSpan.Zero, cancellationToken));
                cancellationToken.ThrowIfCancellationRequested();
                bursts.Add(load.BurstAsync(Operations + ((k - 1) * BurstSize), BurstSize, accounts, loadCancellation.Token));
                await Task.Delay(BurstLead, cancellationToken);
                crashes.Add(await CrashAsync(database, clock, cancellationToken));
            }
        }
        finally
        {
            // A crash could not be made or undone: stop the clients too, the nodes are about to be killed.
            if (crashes.Count < crashCount)
            {
                await loadCancellation.CancelAsync();
            }
        }

        await submits;
        await Task.WhenAll(bursts);
        var loadEnd = clock.Elapsed;
        var lastCrash = crashes[^1].StartedAt;
        Console.WriteLine($"  load done in {(loadEnd - loadStart).TotalSeconds:0.0} s: {load.Records.Count(r => r.AcceptedId is not null)} accepted, {crashes.Count} crashes");

        long unfinishedAtLoadEnd = await database.CountUnfinishedAsync(cancellationToken);
        var remaining = lastCrash + TerminalDeadlineAfterLastCrash - clock.Elapsed;
        var waited = await database.WaitUntilAllTerminalAsync(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero, cancellationToken);
        if (waited is null)
        {
            report.Violation("all-terminal-in-time",
                $"{await database.CountUnfinishedAsync(cancellationToken)} operations were still not terminal " +
                $"{TerminalDeadlineAfterLastCrash.TotalSeconds:0} s after the last crash");
        }

        foreach (var crash in crashes)
        {
            report.Require(crash.RecoveryLogged, "postgres-recovered-from-crash",
                () => $"the server log after the crash at {crash.StoppedAt.TotalSeconds:0.0} s does not say \"{RecoveryLine}\": {crash.LogExcerpt}");
        }

        foreach (var record in load.Records.Where(r => r.Unanswered > 0 || r.NotConnected > 0))
        {
            report.Violation("nodes-always-answer",
                $"submit {record.Index} got {record.Unanswered + record.NotConnected} tries without an answer; the nodes never died");
        }

        foreach (var node in nodes.Where(n => n.HasExited))
        {
            report.Violation("nodes-still-running", $"node {node.NodeId} exited with {node.ExitCode}; see {node.StderrPath}");
        }

        await CountAcceptedAsync(report, database, load.Records, openings, crashes, cancellationToken);
        report.Summary["loadSeconds"] = Math.Round((loadEnd - loadStart).TotalSeconds, 1);
        report.Summary["crashes"] = new JsonArray([.. crashes.Select(c => (JsonNode)new JsonObject
        {
            ["atSeconds"] = Math.Round((c.StoppedAt - loadStart).TotalSeconds, 1),
            ["downSeconds"] = Math.Round((c.StartedAt - c.StoppedAt).TotalSeconds, 1),
            ["recoveryLogged"] = c.RecoveryLogged,
            ["redo"] = c.RedoLine,
        })]);
        report.Summary["unfinishedAtLoadEnd"] = unfinishedAtLoadEnd;
        report.Summary["lastCrashToAllTerminalSeconds"] = waited is null ? null : Math.Round((clock.Elapsed - lastCrash).TotalSeconds, 1);

        await sampler.StopAsync(report);
        var operations = await new SubmitInvariants(report, database, client).CheckAsync(load.Records, openings, accounts, cancellationToken);
        report.Summary["operations"] = operations.Select(o => o.Id).Distinct().Count();
        await new CrashInvariants(report, database, client, accounts.Count >= 2, settings.Seed).CheckAsync(operations, accounts, cancellationToken);
        return report;
    }

    /// <summary>Crashes PostgreSQL, keeps it down for <see cref="DownTime"/>, starts it again and reads what its log says of the recovery.</summary>
    private async Task<Crash> CrashAsync(ScenarioDatabase database, Stopwatch clock, CancellationToken cancellationToken)
    {
        string log = context.Cluster.ServerLogPath;
        long logLength = File.Exists(log) ? new FileInfo(log).Length : 0;
        var stoppedAt = clock.Elapsed;
        Console.WriteLine($"  crashing PostgreSQL (pg_ctl stop -m immediate) at {stoppedAt.TotalSeconds:0.0} s");
        try
        {
            await context.Cluster.StopServerAsync(immediate: true, cancellationToken);
            await Task.Delay(DownTime, cancellationToken);
        }
        finally
        {
            if (!cancellationToken.IsCancellationRequested)
            {
                await context.Cluster.StartServerAsync(CancellationToken.None);
            }
        }

        var startedAt = clock.Elapsed;
        // The harness's own pooled connections died with the server.
        database.DataSource.Clear();
        string written = ReadFrom(log, logLength);
        var lines = written.Split('\n');
        string? redo = lines.FirstOrDefault(l => l.Contains("redo done at", StringComparison.Ordinal))?.Trim();
        Console.WriteLine($"  PostgreSQL is back after {(startedAt - stoppedAt).TotalSeconds:0.0} s{(redo is null ? "" : ": " + redo)}");
        return new Crash(stoppedAt, startedAt, written.Contains(RecoveryLine, StringComparison.Ordinal), redo,
            string.Join(" | ", lines.Where(l => l.Length > 0).Take(10)));
    }

    /// <summary>The 202s' operations, checked one by one against the table: how many, how many missing, how many were in flight at a crash.</summary>
    private static async Task CountAcceptedAsync(ScenarioReport report, ScenarioDatabase database, IReadOnlyCollection<SubmitRecord> records,
        IReadOnlyList<AcceptedOperation> openings, List<Crash> crashes, CancellationToken cancellationToken)
    {
        var rows = await database.ReadOperationsAsync(cancellationToken);
        var accepted = records.Where(r => r.AcceptedId is not null).ToList();
        var ids = accepted.Select(r => r.AcceptedId!.Value).Concat(openings.Select(o => o.Id)).ToHashSet();
        int missing = ids.Count(id => !rows.ContainsKey(id));
        // Sent before a crash began and answered after: their commits raced the crash.
        int inFlight = accepted.Count(r => crashes.Any(c => r.AcceptedAnswer!.StartedAt < c.StoppedAt && r.AcceptedAnswer.EndedAt > c.StoppedAt));
        int afterRetry = accepted.Count(r => r.Tries > 1);
        report.Summary["accepted202s"] = new JsonObject
        {
            ["checked"] = ids.Count,
            ["missing"] = missing,
            ["inFlightAtACrash"] = inFlight,
            ["acceptedOnARetry"] = afterRetry,
        };
    }

    private static string ReadFrom(string path, long offset)
    {
        if (!File.Exists(path))
        {
            return "";
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        stream.Seek(Math.Min(offset, stream.Length), SeekOrigin.Begin);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    private sealed record Crash(TimeSpan StoppedAt, TimeSpan StartedAt, bool RecoveryLogged, string? RedoLine, string LogExcerpt);
}
