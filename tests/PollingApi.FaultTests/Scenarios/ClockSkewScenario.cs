using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using PollingApi.FaultTests.Infrastructure;

namespace PollingApi.FaultTests.Scenarios;

/// <summary>
/// Three nodes whose clocks disagree (one a minute ahead, one a minute behind, under libfaketime, and one right) take
/// submits and run them, under load: nothing runs more often than its attempts, no live lease is rescued, and the
/// timing rules (scheduled starts, retry backoff, attempt timeouts) hold by the database's clock, as the database itself
/// recorded each claim and each end.
/// </summary>
internal sealed partial class ClockSkewScenario(ScenarioContext context)
{
    public const string Name = "clock-skew";

    /// <summary>How many operations the load submits without <c>--operations</c>.</summary>
    public const int DefaultOperations = 3000;

    private const int MaxSubmitTries = 50;
    private const int AttemptTimeoutSeconds = 2;
    public const int TimingOutSleepMs = 5000;
    /// <summary>Operations:DefaultMaxAttempts, which the harness leaves at its default.</summary>
    public const int DefaultMaxAttempts = 5;

    private static readonly TimeSpan Skew = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan TerminalDeadlineAfterLoad = TimeSpan.FromSeconds(90);

    /// <summary>How early a claim may look by the database's clock: the error of the nodes' offset measurements.</summary>
    private static readonly TimeSpan EarlyTolerance = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// How late a due operation may start: one claim round, that is the poll interval (1 s; nothing wakes a node when a
    /// retry or a scheduled start falls due) and the claim itself, with room for a loaded machine.
    /// </summary>
    private static readonly TimeSpan ClaimRound = TimeSpan.FromSeconds(3);

    /// <summary>How much the written due time of a retry may undercut its backoff: the time from the node's reading of its clock to the write.</summary>
    private static readonly TimeSpan WriteLatency = TimeSpan.FromSeconds(2);

    /// <summary>The most an attempt that timed out may run past its timeout (its start, the cancellation and the write of its end).</summary>
    private static readonly TimeSpan TimeoutOverrun = TimeSpan.FromSeconds(2);

    /// <summary>How long an unscheduled operation may wait for its first claim under this load.</summary>
    private static readonly TimeSpan FirstClaimBound = TimeSpan.FromSeconds(10);

    // The harness's timings (NodeLaunch.TestTimings).
    private static readonly TimeSpan RetryBaseDelay = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan RetryMaxDelay = TimeSpan.FromSeconds(1);

    private static readonly (string Id, TimeSpan Offset)[] Nodes =
    [
        ("clock-true", TimeSpan.Zero),
        ("clock-ahead", Skew),
        ("clock-behind", -Skew),
    ];

    private readonly ConcurrentBag<AcceptedOperation> _accepted = [];
    private readonly ConcurrentDictionary<Guid, SkewedSubmit> _submits = new();
    private int _unavailableRetries;
    private int _transportRetries;

    private int Operations => context.Settings.Operations ?? DefaultOperations;

    public async Task<ScenarioReport> RunAsync(CancellationToken cancellationToken)
    {
        var report = new ScenarioReport(Name);
        var settings = context.Settings;
        var duration = settings.Duration ?? TimeSpan.FromSeconds(Math.Max(30, Operations / 100.0));
        report.Summary["seed"] = settings.Seed;
        report.Summary["operationsRequested"] = Operations;
        if (Faketime.LibraryPath is null)
        {
            throw new InvalidOperationException("libfaketime was not found: install Debian's faketime package (apt-get install faketime).");
        }

        var (database, launch) = await context.PrepareAsync(Name, cancellationToken);
        await using var databaseScope = database;
        await using var fleet = new NodeFleet(launch, context.Http);
        var clock = Stopwatch.StartNew();

        // The node with the right clock first: it migrates the database, the harness adds its recording trigger and sets the
        // sleep kind's attempt timeout through it, then the skewed nodes start and read those settings.
        var nodes = new List<NodeProcess> { await fleet.StartAsync(Nodes[0].Id, NodeRole.All, cancellationToken) };
        await AttemptTimeline.InstallAsync(database, cancellationToken);
        var admin = context.Client(nodes[0], clock);
        var put = await admin.SendAsync(HttpMethod.Put, $"v1/admin/kinds/{Kinds.Sleep}",
            JsonSerializer.Serialize(new { attemptTimeoutSeconds = AttemptTimeoutSeconds }), null, cancellationToken);
        report.Require(put.Status == 200, "kind-settings-applied", () => $"PUT /v1/admin/kinds/{Kinds.Sleep} answered {put.Describe()}");

        var skewedFleets = new List<NodeFleet>();
        try
        {
            foreach (var (id, offset) in Nodes.Skip(1))
            {
                var skewed = new NodeFleet(launch with { Settings = Faketime.Environment(offset) }, context.Http);
                skewedFleets.Add(skewed);
                nodes.Add(await skewed.StartAsync(id, NodeRole.All, cancellationToken));
            }

            return await RunLoadAsync(report, database, nodes, clock, duration, cancellationToken);
        }
        finally
        {
            foreach (var skewed in skewedFleets)
            {
                await skewed.DisposeAsync();
            }
        }
    }

    private async Task<ScenarioReport> RunLoadAsync(ScenarioReport report, ScenarioDatabase database, List<NodeProcess> nodes, Stopwatch clock,
        TimeSpan duration, CancellationToken cancellationToken)
    {
        var settings = context.Settings;
        await using var sampler = new RunningSampler(database);
        {
            var clients = nodes.Select(n => context.Client(n, clock)).ToArray();
            Console.WriteLine($"  submitting {Operations} operations over at least {duration.TotalSeconds:0} s with {settings.Clients} clients, " +
                              $"round robin to {string.Join(", ", Nodes.Select(n => $"{n.Id} ({n.Offset.TotalSeconds:+0;-0;0} s)"))}");
            var loadStart = clock.Elapsed;
            await SubmitLoadAsync(clients, duration, report, cancellationToken);
            var loadEnd = clock.Elapsed;
            long unfinishedAtLoadEnd = await database.CountUnfinishedAsync(cancellationToken);
            Console.WriteLine($"  load done in {(loadEnd - loadStart).TotalSeconds:0.0} s: {_accepted.Count} accepted; " +
                              $"waiting until the {unfinishedAtLoadEnd} unfinished operations are terminal");
            var waited = await database.WaitUntilAllTerminalAsync(TerminalDeadlineAfterLoad, cancellationToken);
            if (waited is null)
            {
                report.Violation("all-terminal-in-time",
                    $"{await database.CountUnfinishedAsync(cancellationToken)} operations were still not terminal {TerminalDeadlineAfterLoad.TotalSeconds:0} s after the load");
            }

            report.Summary["loadSeconds"] = Round(loadEnd - loadStart);
            report.Summary["unfinishedAtLoadEnd"] = unfinishedAtLoadEnd;
            report.Summary["loadEndToAllTerminalSeconds"] = waited is null ? null : Round(waited.Value);
            report.Summary["kills"] = 0;
            report.Summary["submitRetries"] = new JsonObject { ["unavailable"] = _unavailableRetries, ["transportErrors"] = _transportRetries };

            foreach (var node in nodes.Where(n => n.HasExited))
            {
                report.Violation("nodes-still-running", $"node {node.NodeId} exited with {node.ExitCode}; see {node.StderrPath}");
            }

            await sampler.StopAsync(report);
            await CheckAsync(report, database, cancellationToken);
            CheckClockWarnings(report, nodes);
        }

        return report;
    }

    /// <summary>Submits the operations, paced over <paramref name="duration"/>, each to the next node in turn.</summary>
    private async Task SubmitLoadAsync(ApiClient[] clients, TimeSpan duration, ScenarioReport report, CancellationToken cancellationToken)
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

                var submit = SkewMix.Next(settings.Seed, i);
                var headers = new Dictionary<string, string>(StringComparer.Ordinal);
                DateTime? scheduledAt = null;
                if (submit.ScheduleAhead is { } ahead)
                {
                    // By the harness's clock, which is the database server's: they share this machine.
                    scheduledAt = TimeProvider.System.GetUtcNow().UtcDateTime + ahead;
                    headers["Operation-Scheduled-At"] = scheduledAt.Value.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
                }

                var outcome = await clients[i % clients.Length].SubmitAsync(submit.Command.Route, submit.Command.Json, $"skew-{i}", headers,
                    MaxSubmitTries, cancellationToken);
                Interlocked.Add(ref _unavailableRetries, outcome.UnavailableAnswers);
                Interlocked.Add(ref _transportRetries, outcome.TransportErrors);
                if (outcome.Final.Status is 202 or 200 && outcome.Final.OperationId is { } id)
                {
                    _accepted.Add(new AcceptedOperation(id, submit.Command));
                    _submits[id] = submit;
                }
                else
                {
                    report.Violation("submit-accepted", $"POST /{submit.Command.Route} {submit.Command.Json}: {outcome.Final.Describe()}");
                }
            }
        }, cancellationToken)));
    }

    private async Task CheckAsync(ScenarioReport report, ScenarioDatabase database, CancellationToken cancellationToken)
    {
        var rows = await database.ReadOperationsAsync(cancellationToken);
        var timelines = await AttemptTimeline.ReadAsync(database, cancellationToken);
        var history = await HistoryEntry.ReadAllAsync(database, cancellationToken);
        var scheduledAt = await database.ScheduledAtAsync(cancellationToken);
        report.Summary["accepted"] = _submits.Count;

        var timing = new TimingFigures();
        var extra = 0L;
        var attemptsByNode = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var (id, submit) in _submits)
        {
            if (!rows.TryGetValue(id, out var row))
            {
                report.Violation("no-accepted-operation-lost", $"{id} was answered 202 but is not in the database");
                continue;
            }

            report.Require(row.IsTerminal, "every-operation-terminal", () => $"{id} is still {row.Status} (attempt {row.Attempts})");
            report.Require(row.LockedBy is null, "no-lease-left-behind", () => $"{id} is {row.Status} and locked by {row.LockedBy}");
            CheckOutcome(report, submit, row);

            var timeline = timelines.GetValueOrDefault(id);
            var attempts = timeline?.Attempts ?? [];
            foreach (var attempt in attempts)
            {
                attemptsByNode[attempt.Node ?? "?"] = attemptsByNode.GetValueOrDefault(attempt.Node ?? "?") + 1;
            }

            // Every attempt is one execution of the handler: as many as the command needs, never more than its attempts.
            int expected = submit.ExpectedAttempts;
            extra += Math.Max(0, attempts.Count - expected);
            report.Require(attempts.Count == expected && attempts.Count <= row.MaxAttempts && row.Attempts == attempts.Count, "executions-as-expected",
                () => $"{id} ({submit.Describe()}) ran {attempts.Count} attempts ({Describe(attempts)}); it needs {expected}, " +
                      $"may have {row.MaxAttempts}, and the row counts {row.Attempts}");

            if (attempts.Count == 0)
            {
                continue;
            }

            var first = attempts[0];
            if (scheduledAt.TryGetValue(id, out var scheduled))
            {
                var late = first.StartedAt - scheduled;
                timing.Scheduled.Add(late);
                report.Require(late >= -EarlyTolerance, "scheduled-not-started-early",
                    () => $"{id} was scheduled at {scheduled:O} but started at {first.StartedAt:O} by {first.Node} ({late.TotalSeconds:0.000} s)");
                report.Require(late <= ClaimRound, "scheduled-started-within-a-claim-round",
                    () => $"{id} was scheduled at {scheduled:O} but started at {first.StartedAt:O} by {first.Node} ({late.TotalSeconds:0.000} s late)");
            }
            else if (timeline?.InsertedAt is { } inserted)
            {
                var wait = first.StartedAt - inserted;
                timing.FirstClaimWait.Add(wait);
                report.Require(wait <= FirstClaimBound, "first-attempt-not-held-back",
                    () => $"{id} was stored at {inserted:O} but first started at {first.StartedAt:O} by {first.Node} ({wait.TotalSeconds:0.000} s later)");
            }

            for (int n = 0; n + 1 < attempts.Count; n++)
            {
                CheckRetry(report, id, attempts[n], attempts[n + 1], timing);
            }

            if (submit.TimesOut)
            {
                foreach (var attempt in attempts.Where(a => a.Duration is not null))
                {
                    var ran = attempt.Duration!.Value;
                    timing.TimedOutAttempts.Add(ran);
                    var timeout = TimeSpan.FromSeconds(AttemptTimeoutSeconds);
                    report.Require(ran >= timeout - EarlyTolerance && ran <= timeout + TimeoutOverrun, "attempt-timeout-ends-after-its-timeout",
                        () => $"{id} attempt {attempt.Attempt} on {attempt.Node} ran {ran.TotalSeconds:0.000} s with a timeout of {AttemptTimeoutSeconds} s");
                }
            }
        }

        // No node died, so no lease may have been rescued: a rescue here took a live node's operation away.
        var leaseLost = history.Where(e => e.Outcome == HistoryEntry.LeaseLost).ToList();
        foreach (var entry in leaseLost)
        {
            report.Violation("no-lease-rescued-while-its-owner-lives",
                $"{entry.Id} attempt {entry.Attempt} of {entry.Node} (alive) was rescued at {entry.EndedAt:O}, started {entry.StartedAt:O}");
        }

        foreach (var (id, _) in Nodes.Skip(1))
        {
            report.Require(attemptsByNode.GetValueOrDefault(id) > 0, "skewed-nodes-did-work", () => $"{id} ran no attempt at all");
        }

        report.Summary["terminal"] = CountBy(_submits.Keys.Select(id => rows.TryGetValue(id, out var r) ? Outcome(r) : "missing"));
        report.Summary["extraExecutions"] = extra;
        report.Summary["rescues"] = leaseLost.Count;
        report.Summary["attemptsByNode"] = new JsonObject(attemptsByNode.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value)));
        report.Summary["timing"] = timing.ToJson();
        report.Summary["storedWithoutAcceptedAnswer"] = rows.Keys.Count(id => !_submits.ContainsKey(id));
    }

    /// <summary>
    /// A retry: the due time the failing node wrote is its backoff after the failure by the database's clock (not shortened
    /// by a slow clock, not stretched by a fast one), and the next attempt started not before it and within a claim round.
    /// </summary>
    private static void CheckRetry(ScenarioReport report, Guid id, RecordedAttempt failed, RecordedAttempt retry, TimingFigures timing)
    {
        if (failed.EndedAt is not { } ended || failed.NextAttemptAt is not { } due)
        {
            report.Violation("retry-recorded", $"{id} attempt {failed.Attempt} was followed by attempt {retry.Attempt} without ending in a retry " +
                                               $"({failed.EndStatus} at {failed.EndedAt:O})");
            return;
        }

        var backoff = due - ended;
        var cap = BackoffCap(failed.Attempt);
        timing.WrittenBackoff.Add(backoff);
        report.Require(backoff >= -WriteLatency && backoff <= cap + EarlyTolerance, "retry-due-after-its-backoff",
            () => $"{id} attempt {failed.Attempt} on {failed.Node} ended at {ended:O} and set the retry due at {due:O}: " +
                  $"{backoff.TotalSeconds:0.000} s later, where the backoff is 0 to {cap.TotalSeconds:0.000} s");

        var startedAfterDue = retry.StartedAt - due;
        timing.RetryStartAfterDue.Add(startedAfterDue);
        report.Require(startedAfterDue >= -EarlyTolerance, "retry-not-before-its-backoff",
            () => $"{id} attempt {retry.Attempt} started on {retry.Node} at {retry.StartedAt:O}, due at {due:O} ({startedAfterDue.TotalSeconds:0.000} s)");
        report.Require(startedAfterDue <= ClaimRound, "retry-within-a-claim-round-of-its-backoff",
            () => $"{id} attempt {retry.Attempt} started on {retry.Node} at {retry.StartedAt:O}, due at {due:O} ({startedAfterDue.TotalSeconds:0.000} s late)");
    }

    private static void CheckOutcome(ScenarioReport report, SkewedSubmit submit, StoredOperation row)
    {
        if (!row.IsTerminal)
        {
            return;
        }

        string expected = submit switch
        {
            { Command.FailPermanently: true } => $"failed:{ProblemTypes.DiagnosticsPermanentFailure}",
            { TimesOut: true } => $"failed:{ProblemTypes.AttemptTimedOut}",
            _ => "succeeded",
        };
        string actual = row.Status == "failed" ? $"failed:{row.ErrorType}" : row.Status;
        report.Require(actual == expected, "outcome-as-submitted", () => $"{row.Id} ({submit.Describe()}) ended {actual}; expected {expected}");
        if (row.Status == "succeeded")
        {
            report.Require(row.ResultJson is not null && JsonNode.Parse(row.ResultJson)?["attempt"]?.GetValue<int>() == row.Attempts,
                "result-of-the-last-attempt", () => $"{row.Id} has result {row.ResultJson} but the row says attempt {row.Attempts}");
        }
    }

    /// <summary>The skewed nodes said their clock was off, by about the skew; the right one did not.</summary>
    private static void CheckClockWarnings(ScenarioReport report, List<NodeProcess> nodes)
    {
        var offsets = new JsonObject();
        foreach (var node in nodes)
        {
            var expected = Nodes.Single(n => n.Id == node.NodeId).Offset;
            var warning = NodeLog.Read(node).Select(e => ClockWarning().Match(e.Text)).FirstOrDefault(m => m.Success);
            double? measured = warning is null ? null
                : double.Parse(warning.Groups["seconds"].Value, CultureInfo.InvariantCulture) * (warning.Groups["direction"].Value == "ahead of" ? 1 : -1);
            offsets[node.NodeId] = measured;
            if (expected == TimeSpan.Zero)
            {
                report.Require(measured is null, "clock-warning-only-where-the-clock-is-off",
                    () => $"{node.NodeId} (right clock) warned that its clock is {measured} s off");
            }
            else
            {
                // The node logs how far its own clock is ahead of the database's (negative: behind).
                report.Require(measured is { } m && Math.Abs(m - expected.TotalSeconds) < 1, "clock-warning-logged",
                    () => $"{node.NodeId} (clock {expected.TotalSeconds:+0;-0} s) logged {(measured is null ? "no clock warning" : $"a clock {measured:+0.000;-0.000} s off")}; see {node.StdoutPath}");
            }
        }

        report.Summary["loggedClockSkewSeconds"] = offsets;
    }

    private static TimeSpan BackoffCap(int failedAttempt) =>
        TimeSpan.FromTicks(Math.Min(RetryMaxDelay.Ticks, RetryBaseDelay.Ticks * (1L << Math.Clamp(failedAttempt - 1, 0, 30))));

    private static string Describe(List<RecordedAttempt> attempts) =>
        string.Join("; ", attempts.Select(a => $"#{a.Attempt} {a.Node} {a.StartedAt:HH:mm:ss.fff}-{a.EndedAt:HH:mm:ss.fff} {a.EndStatus}"));

    private static string Outcome(StoredOperation row) =>
        row.Status == "failed" && row.ErrorType is { } type ? $"failed:{type.Replace("urn:pollingapi:problem:", "", StringComparison.Ordinal)}" : row.Status;

    private static JsonObject CountBy(IEnumerable<string> keys) =>
        new(keys.GroupBy(k => k, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => KeyValuePair.Create(g.Key, (JsonNode?)g.Count())));

    private static double Round(TimeSpan span) => Math.Round(span.TotalSeconds, 1);

    [GeneratedRegex(@"clock is (?<seconds>\d+(\.\d+)?) s (?<direction>ahead of|behind) the database server's")]
    private static partial Regex ClockWarning();

    /// <summary>The spreads of the timing figures, in seconds by the database's clock.</summary>
    private sealed class TimingFigures
    {
        public List<TimeSpan> Scheduled { get; } = [];

        public List<TimeSpan> FirstClaimWait { get; } = [];

        public List<TimeSpan> WrittenBackoff { get; } = [];

        public List<TimeSpan> RetryStartAfterDue { get; } = [];

        public List<TimeSpan> TimedOutAttempts { get; } = [];

        public JsonObject ToJson() => new()
        {
            ["scheduledStartAfterScheduledAt"] = Spread(Scheduled),
            ["firstClaimAfterStored"] = Spread(FirstClaimWait),
            ["retryDueAfterFailure"] = Spread(WrittenBackoff),
            ["retryStartAfterDue"] = Spread(RetryStartAfterDue),
            ["timedOutAttemptSeconds"] = Spread(TimedOutAttempts),
        };

        private static JsonObject Spread(List<TimeSpan> values)
        {
            if (values.Count == 0)
            {
                return new JsonObject { ["count"] = 0 };
            }

            var sorted = values.Select(v => v.TotalSeconds).Order().ToArray();
            return new JsonObject
            {
                ["count"] = sorted.Length,
                ["min"] = Math.Round(sorted[0], 3),
                ["p50"] = Math.Round(sorted[sorted.Length / 2], 3),
                ["p99"] = Math.Round(sorted[Math.Min(sorted.Length - 1, (int)(sorted.Length * 0.99))], 3),
                ["max"] = Math.Round(sorted[^1], 3),
            };
        }
    }
}

/// <summary>A submit of the clock-skew scenario: the sleep, whether it is scheduled ahead, and whether its attempts time out.</summary>
internal sealed record SkewedSubmit(SleepCommand Command, TimeSpan? ScheduleAhead, bool TimesOut)
{
    /// <summary>Attempts it takes: every one for a sleep that always times out, one per simulated transient failure and one more otherwise.</summary>
    public int ExpectedAttempts => TimesOut ? ClockSkewScenario.DefaultMaxAttempts : Command.ExpectedAttempts;

    public string Describe() =>
        $"sleep {Command.DurationMs} ms" + (Command.FailTimes > 0 ? $", failTimes {Command.FailTimes}" : "") +
        (Command.FailPermanently ? ", failPermanently" : "") + (ScheduleAhead is { } ahead ? $", scheduled {ahead.TotalSeconds:0.0} s ahead" : "") +
        (TimesOut ? ", times out" : "");
}

/// <summary>The clock-skew scenario's mix, a pure function of the seed and the submit's number.</summary>
internal static class SkewMix
{
    public static SkewedSubmit Next(int seed, int index)
    {
        var random = new Random(unchecked((seed * 1_000_003) + index));
        double kind = random.NextDouble();
        return kind switch
        {
            < 0.02 => new SkewedSubmit(new SleepCommand(random.Next(0, 101), 0, FailPermanently: true), null, TimesOut: false),
            // Sleeps longer than the kind's attempt timeout: every attempt is cut off, and the last one fails the operation.
            < 0.04 => new SkewedSubmit(new SleepCommand(ClockSkewScenario.TimingOutSleepMs, 0, FailPermanently: false), null, TimesOut: true),
            < 0.14 => new SkewedSubmit(new SleepCommand(random.Next(0, 101), 0, FailPermanently: false),
                TimeSpan.FromMilliseconds(random.Next(2000, 6001)), TimesOut: false),
            < 0.26 => new SkewedSubmit(new SleepCommand(random.Next(0, 201), random.Next(1, 3), FailPermanently: false), null, TimesOut: false),
            _ => new SkewedSubmit(new SleepCommand(random.Next(0, 301), 0, FailPermanently: false), null, TimesOut: false),
        };
    }
}
