using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json.Nodes;
using PollingApi.FaultTests.Infrastructure;

namespace PollingApi.FaultTests.Scenarios;

/// <summary>
/// Workers die (SIGKILL) under load and are replaced by workers with new node ids: no accepted operation may be
/// lost, each must end as its command says, and the ledger must balance with exactly one set of entries per
/// succeeded money operation, however many times a handler ran.
/// </summary>
internal sealed class CrashScenario(ScenarioContext context)
{
    public const string Name = "crash";

    /// <summary>How many operations the load submits without <c>--operations</c>.</summary>
    public const int DefaultOperations = 3000;

    private const int WorkerCount = 3;
    private const int MaxSubmitTries = 50;
    private static readonly TimeSpan TerminalDeadlineAfterLastKill = TimeSpan.FromSeconds(120);

    private readonly ConcurrentBag<AcceptedOperation> _accepted = [];
    private int _unavailableRetries;
    private int _transportRetries;
    private int _rejectedAsExpected;

    private int Operations => context.Settings.Operations ?? DefaultOperations;

    public async Task<ScenarioReport> RunAsync(CancellationToken cancellationToken)
    {
        var report = new ScenarioReport(Name);
        var settings = context.Settings;
        var duration = settings.Duration ?? TimeSpan.FromSeconds(Math.Max(30, Operations / 100.0));
        report.Summary["seed"] = settings.Seed;
        report.Summary["operationsRequested"] = Operations;

        var (database, launch) = await context.PrepareAsync(Name, cancellationToken);
        await using var databaseScope = database;
        await using var sampler = new RunningSampler(database);
        await using var fleet = new NodeFleet(launch, context.Http);
        var clock = Stopwatch.StartNew();

        var api = await fleet.StartAsync("crash-api", NodeRole.Api, cancellationToken);
        var workers = Enumerable.Range(1, WorkerCount)
            .Select(n => fleet.StartWithoutWaiting($"crash-worker-{n}", NodeRole.Worker)).ToList();
        foreach (var worker in workers)
        {
            await fleet.WaitUntilReadyAsync(worker, cancellationToken);
        }

        var client = context.Client(api, clock);
        IReadOnlyList<OpenedAccount> accounts = [];
        if (!settings.SkipLedger)
        {
            (accounts, var openings) = await AccountOpening.OpenAsync(client, database, report, Name, settings.Clients, cancellationToken);
            foreach (var opening in openings)
            {
                _accepted.Add(opening);
            }
        }

        bool ledger = accounts.Count >= 2;

        Console.WriteLine($"  submitting {Operations} operations over at least {duration.TotalSeconds:0} s " +
                          $"with {settings.Clients} clients, killing a worker every {settings.KillInterval.TotalSeconds:0} s");
        var loadStart = clock.Elapsed;
        using var loadCancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var load = SubmitLoadAsync(client, accounts, duration, report, loadCancellation.Token);
        KillRecord kills;
        try
        {
            kills = await KillWorkersWhileAsync(load, fleet, workers, database, clock, cancellationToken);
        }
        finally
        {
            // The kill loop failed: stop the clients too, the nodes are about to be killed.
            if (!load.IsCompleted)
            {
                await loadCancellation.CancelAsync();
            }
        }

        await load;
        var loadEnd = clock.Elapsed;
        var lastKill = kills.LastKillAt ?? loadEnd;
        long unfinishedAtLoadEnd = await database.CountUnfinishedAsync(cancellationToken);
        Console.WriteLine($"  load done in {(loadEnd - loadStart).TotalSeconds:0.0} s: {_accepted.Count} accepted, {kills.Count} kills; " +
                          $"waiting until the {unfinishedAtLoadEnd} unfinished operations are terminal");

        var remaining = lastKill + TerminalDeadlineAfterLastKill - clock.Elapsed;
        var waited = await database.WaitUntilAllTerminalAsync(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero, cancellationToken);
        if (waited is null)
        {
            report.Violation("all-terminal-in-time",
                $"{await database.CountUnfinishedAsync(cancellationToken)} operations were still not terminal " +
                $"{TerminalDeadlineAfterLastKill.TotalSeconds:0} s after the last kill");
        }

        report.Summary["loadSeconds"] = Round(loadEnd - loadStart);
        report.Summary["kills"] = kills.Count;
        report.Summary["operationsHeldByKilledWorkers"] = kills.OperationsHeld;
        report.Summary["unfinishedAtLoadEnd"] = unfinishedAtLoadEnd;
        report.Summary["lastKillToAllTerminalSeconds"] = waited is null ? null : Round(clock.Elapsed - lastKill);
        report.Summary["submitRetries"] = new JsonObject
        {
            ["unavailable"] = _unavailableRetries,
            ["transportErrors"] = _transportRetries,
        };
        report.Summary["rejectedAtSubmitAsExpected"] = _rejectedAsExpected;

        foreach (var node in workers.Append(api).Where(n => n.HasExited))
        {
            report.Violation("nodes-still-running", $"node {node.NodeId} exited with {node.ExitCode} although it was not killed");
        }

        await sampler.StopAsync(report);
        var invariants = new CrashInvariants(report, database, client, ledger, settings.Seed);
        await invariants.CheckAsync([.. _accepted], accounts, cancellationToken);
        return report;
    }

    /// <summary>Submits the operations, paced over <paramref name="duration"/>, from <c>Clients</c> concurrent clients.</summary>
    private async Task SubmitLoadAsync(ApiClient client, IReadOnlyList<OpenedAccount> accounts, TimeSpan duration, ScenarioReport report,
        CancellationToken cancellationToken)
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

                var command = CommandMix.Next(settings.Seed, i, accounts);
                var outcome = await client.SubmitAsync(command.Route, command.Json, $"crash-{i}", MaxSubmitTries, cancellationToken);
                Interlocked.Add(ref _unavailableRetries, outcome.UnavailableAnswers);
                Interlocked.Add(ref _transportRetries, outcome.TransportErrors);
                if (IsAccepted(outcome.Final) && outcome.Final.OperationId is { } id)
                {
                    _accepted.Add(new AcceptedOperation(id, command));
                }
                else if (command is TransferCommand { ToUnknownAccount: true } && outcome.Final.Status is >= 400 and < 500)
                {
                    // Refusing a transfer to an account that does not exist at submit time is as good as failing it later.
                    Interlocked.Increment(ref _rejectedAsExpected);
                }
                else
                {
                    report.Violation("submit-accepted", $"POST /{command.Route} {command.Json}: {outcome.Final.Describe()}");
                }
            }
        }, cancellationToken)));
    }

    /// <summary>Kills a random worker every KillInterval until <paramref name="load"/> ends, replacing each with a new node id.</summary>
    private async Task<KillRecord> KillWorkersWhileAsync(Task load, NodeFleet fleet, List<NodeProcess> workers, ScenarioDatabase database,
        Stopwatch clock, CancellationToken cancellationToken)
    {
        var random = new Random(context.Settings.Seed);
        int nextWorker = WorkerCount;
        var record = new KillRecord();
        while (true)
        {
            await Task.WhenAny(load, Task.Delay(context.Settings.KillInterval, cancellationToken));
            cancellationToken.ThrowIfCancellationRequested();
            if (load.IsCompleted)
            {
                return record;
            }

            int index = random.Next(workers.Count);
            var victim = workers[index];
            victim.Kill();
            if (!await victim.WaitForExitAsync(TimeSpan.FromSeconds(10), cancellationToken))
            {
                throw new InvalidOperationException($"Worker {victim.NodeId} (pid {victim.Pid}) did not die of SIGKILL within 10 s.");
            }

            record.Count++;
            record.LastKillAt = clock.Elapsed;
            // Its rows keep its node id until their leases expire: these are the operations lease rescue must return.
            var running = await database.CountRunningByNodeAsync(cancellationToken);
            record.OperationsHeld += running.GetValueOrDefault(victim.NodeId);
            workers[index] = fleet.StartWithoutWaiting($"crash-worker-{++nextWorker}", NodeRole.Worker);
        }
    }

    private static bool IsAccepted(ApiAnswer answer) => answer.Status == 202 || (answer.Status == 200 && answer.Replayed);

    private static double Round(TimeSpan span) => Math.Round(span.TotalSeconds, 1);

    private sealed class KillRecord
    {
        public int Count { get; set; }

        public TimeSpan? LastKillAt { get; set; }

        public long OperationsHeld { get; set; }
    }
}

/// <summary>An account the harness opened: its id, what it was opened with, and the opening operation.</summary>
internal sealed record OpenedAccount(Guid AccountId, long OpeningBalance, Guid OperationId);

/// <summary>
/// The crash scenario's mix of commands, a pure function of the seed and the submit's number, so a run can be
/// repeated with <c>--seed</c> whatever order the clients happen to submit in.
/// </summary>
internal static class CommandMix
{
    public static Command Next(int seed, int index, IReadOnlyList<OpenedAccount> accounts)
    {
        var random = new Random(unchecked((seed * 1_000_003) + index));
        if (accounts.Count >= 2 && random.NextDouble() < 0.40)
        {
            int from = random.Next(accounts.Count);
            long amount = random.Next(1, 501);
            if (random.NextDouble() < 0.03)
            {
                var unknown = new byte[16];
                random.NextBytes(unknown);
                return new TransferCommand(accounts[from].AccountId, new Guid(unknown), amount, ToUnknownAccount: true);
            }

            int to = (from + 1 + random.Next(accounts.Count - 1)) % accounts.Count;
            return new TransferCommand(accounts[from].AccountId, accounts[to].AccountId, amount, ToUnknownAccount: false);
        }

        int duration = random.Next(0, 301);
        double failure = random.NextDouble();
        return failure switch
        {
            < 0.05 => new SleepCommand(duration, 0, FailPermanently: true),
            < 0.15 => new SleepCommand(duration, random.Next(1, 3), FailPermanently: false),
            _ => new SleepCommand(duration, 0, FailPermanently: false),
        };
    }
}
