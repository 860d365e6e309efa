using System.Collections.Concurrent;
using System.Diagnostics;
using PollingApi.FaultTests.Infrastructure;

namespace PollingApi.FaultTests.Scenarios;

/// <summary>
/// A busy worker gets SIGTERM: it must exit within ShutdownTimeout (plus slack), leave no row locked by its id,
/// give back what it could not finish as pending without counting the interrupted attempt, and a new worker must
/// then finish everything.
/// </summary>
internal sealed class ShutdownScenario(ScenarioContext context)
{
    public const string Name = "shutdown";

    private const int LongSleeps = 8;
    private const int ShortSleeps = 192;
    private const int LongSleepMs = 10_000;
    private const int MinRunningAtSignal = 16;
    private const int Clients = 8;
    private static readonly TimeSpan RunningDeadline = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ExitSlack = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan CompletionDeadline = TimeSpan.FromSeconds(90);

    private readonly ConcurrentDictionary<Guid, SleepCommand> _accepted = new();

    public async Task<ScenarioReport> RunAsync(CancellationToken cancellationToken)
    {
        var report = new ScenarioReport(Name);
        var (database, launch) = await context.PrepareAsync(Name, cancellationToken);
        await using var databaseScope = database;
        await using var sampler = new RunningSampler(database);
        await using var fleet = new NodeFleet(launch, context.Http);
        var clock = Stopwatch.StartNew();

        var api = fleet.StartWithoutWaiting("shutdown-api", NodeRole.Api);
        var worker = fleet.StartWithoutWaiting("shutdown-worker-1", NodeRole.Worker);
        await fleet.WaitUntilReadyAsync(api, cancellationToken);
        await fleet.WaitUntilReadyAsync(worker, cancellationToken);
        var client = context.Client(api, clock);

        // The long sleeps go first, so they are in the first claim; they outlast ShutdownTimeout and must be released.
        var random = new Random(context.Settings.Seed);
        var commands = Enumerable.Range(0, LongSleeps).Select(_ => new SleepCommand(LongSleepMs, 0, false))
            .Concat(Enumerable.Range(0, ShortSleeps).Select(_ => new SleepCommand(random.Next(2000, 4001), 0, false)))
            .ToList();
        for (int i = 0; i < LongSleeps; i++)
        {
            await SubmitAsync(client, commands[i], i, report, cancellationToken);
        }

        await Parallel.ForEachAsync(Enumerable.Range(LongSleeps, ShortSleeps),
            new ParallelOptions { MaxDegreeOfParallelism = Clients, CancellationToken = cancellationToken },
            async (i, ct) => await SubmitAsync(client, commands[i], i, report, ct));
        var longIds = _accepted.Where(a => a.Value.DurationMs == LongSleepMs).Select(a => a.Key).ToHashSet();

        bool busy = await Waiting.UntilAsync(async () =>
        {
            var rows = await database.ReadOperationsAsync(cancellationToken);
            var running = rows.Values.Where(r => r.Status == "running").ToList();
            return running.Count >= MinRunningAtSignal && longIds.All(id => running.Exists(r => r.Id == id));
        }, RunningDeadline, TimeSpan.FromMilliseconds(100), cancellationToken);
        if (!busy)
        {
            report.Violation("worker-gets-busy", $"the worker was not running {MinRunningAtSignal} operations and every long sleep within {RunningDeadline.TotalSeconds:0} s");
        }

        var runningAtSignal = (await database.ReadOperationsAsync(cancellationToken)).Values
            .Where(r => r.Status == "running" && r.LockedBy == worker.NodeId).Select(r => r.Id).ToHashSet();
        Console.WriteLine($"  sending SIGTERM to {worker.NodeId} (pid {worker.Pid}) while it runs {runningAtSignal.Count} operations");
        var signalledAt = clock.Elapsed;
        await worker.TerminateAsync(cancellationToken);
        var exitDeadline = NodeLaunch.ShutdownTimeout + ExitSlack;
        bool exited = await worker.WaitForExitAsync(exitDeadline, cancellationToken);
        var exitTime = clock.Elapsed - signalledAt;
        if (!exited)
        {
            report.Violation("exits-within-shutdown-timeout", $"{worker.NodeId} was still running {exitDeadline.TotalSeconds:0} s after SIGTERM");
            worker.Kill();
            await worker.WaitForExitAsync(TimeSpan.FromSeconds(10), cancellationToken);
        }
        else
        {
            report.Require(worker.ExitCode == 0, "exits-cleanly", () => $"{worker.NodeId} exited with {worker.ExitCode} after SIGTERM; see {worker.StderrPath}");
        }

        var afterExit = await database.ReadOperationsAsync(cancellationToken);
        foreach (var row in afterExit.Values.Where(r => r.LockedBy == worker.NodeId))
        {
            report.Violation("no-row-locked-by-the-stopped-worker", $"{row.Id} is {row.Status} and locked by {row.LockedBy}");
        }

        foreach (var row in afterExit.Values.Where(r => r.Status == "running"))
        {
            report.Violation("nothing-left-running", $"{row.Id} is running (locked by {row.LockedBy}) with no worker alive");
        }

        var released = runningAtSignal.Where(id => afterExit[id].Status == "pending").ToHashSet();
        int finishedDuringDrain = runningAtSignal.Count(id => afterExit[id].Status == "succeeded");
        foreach (var id in runningAtSignal.Where(id => afterExit[id].Status is not ("pending" or "succeeded")))
        {
            report.Violation("running-operations-released-or-finished", $"{id} was running at SIGTERM and is now {afterExit[id].Status} ({afterExit[id].ErrorType})");
        }

        foreach (var id in released.Where(id => afterExit[id].Attempts != 0))
        {
            report.Violation("interrupted-attempt-not-counted", $"{id} was released with attempts = {afterExit[id].Attempts}, not 0");
        }

        foreach (var id in longIds.Where(id => runningAtSignal.Contains(id) && !released.Contains(id)))
        {
            report.Violation("handlers-past-the-timeout-are-released",
                $"the {LongSleepMs} ms sleep {id} outlasts ShutdownTimeout but is {afterExit[id].Status}, not pending");
        }

        Console.WriteLine($"  {worker.NodeId} exited in {exitTime.TotalSeconds:0.0} s; starting a new worker to finish the rest");
        var replacementStart = clock.Elapsed;
        await fleet.StartAsync("shutdown-worker-2", NodeRole.Worker, cancellationToken);
        var finished = await database.WaitUntilAllTerminalAsync(CompletionDeadline, cancellationToken);
        if (finished is null)
        {
            report.Violation("all-succeed-after-restart",
                $"{await database.CountUnfinishedAsync(cancellationToken)} operations were not terminal {CompletionDeadline.TotalSeconds:0} s after the new worker started");
        }

        var final = await database.ReadOperationsAsync(cancellationToken);
        foreach (var (id, command) in _accepted)
        {
            if (!final.TryGetValue(id, out var row))
            {
                report.Violation("no-accepted-operation-lost", $"{id} was answered 202 but is not in the database");
                continue;
            }

            report.Require(row.Status == "succeeded" || !row.IsTerminal, "all-succeed-after-restart",
                () => $"sleep {id} ({command.DurationMs} ms) ended {row.Status} ({row.ErrorType}) after {row.Attempts} attempts");
            report.Require(!released.Contains(id) || row.Status != "succeeded" || row.Attempts == 1, "interrupted-attempt-not-counted",
                () => $"{id} was released once and then succeeded, but took {row.Attempts} attempts");
        }

        await sampler.StopAsync(report);
        report.Summary["accepted"] = _accepted.Count;
        report.Summary["runningAtSigterm"] = runningAtSignal.Count;
        report.Summary["exitSeconds"] = Math.Round(exitTime.TotalSeconds, 2);
        report.Summary["exitCode"] = worker.ExitCode;
        report.Summary["finishedDuringDrain"] = finishedDuringDrain;
        report.Summary["released"] = released.Count;
        report.Summary["allTerminalAfterNewWorkerSeconds"] = finished is null ? null : Math.Round((clock.Elapsed - replacementStart).TotalSeconds, 1);
        report.Summary["succeeded"] = final.Values.Count(r => r.Status == "succeeded");
        return report;
    }

    private async Task SubmitAsync(ApiClient client, SleepCommand command, int index, ScenarioReport report, CancellationToken cancellationToken)
    {
        var outcome = await client.SubmitAsync(command.Route, command.Json, $"shutdown-{index}", maxTries: 20, cancellationToken);
        if (outcome.Accepted && outcome.Final.OperationId is { } id)
        {
            _accepted[id] = command;
        }
        else
        {
            report.Violation("submit-accepted", $"POST /{command.Route} {command.Json}: {outcome.Final.Describe()}");
        }
    }
}
