using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using PollingApi.Benchmarks.Infrastructure;
using PollingApi.Benchmarks.Load;
using PollingApi.Harness;
using PollingApi.LocalPostgres;

namespace PollingApi.Benchmarks;

/// <summary>Everything one run measured, on one fresh cluster and one API process.</summary>
internal sealed record RunResult
{
    public required PgBenchResult Insert { get; init; }
    public required PgBenchResult Select { get; init; }
    public required CpuUsage Idle { get; init; }
    public required LoadResult Submit { get; init; }
    public required (long Backlog, double Seconds) SubmitDrain { get; init; }
    public required LoadResult EndToEnd { get; init; }

    /// <summary>(b2): POST, then <c>GET {Location}?wait=N</c>.</summary>
    public required LoadResult EndToEndLongPoll { get; init; }

    /// <summary>(b3): POST, then plain polls honouring <c>Retry-After</c>, and what those polls saw.</summary>
    public required LoadResult EndToEndPolls { get; init; }
    public required PollStats Polls { get; init; }

    /// <summary>(h): the same client loop against this API and against the Hangfire peer; null when (h) was left out.</summary>
    public required PeerComparison? Peer { get; init; }
    public required LoadResult Light { get; init; }
    public required LoadResult StatusReads { get; init; }
    public required long PeakResidentBytes { get; init; }
    public required long PeakResidentBeforeSeedBytes { get; init; }
    public required long SeededRows { get; init; }
    public required double SeedSeconds { get; init; }
    public required long RowsBeforeSeeded { get; init; }
    public required LoadResult SubmitSeeded { get; init; }
    public required (long Backlog, double Seconds) SubmitSeededDrain { get; init; }
    public required LoadResult EndToEndSeeded { get; init; }
    public required WebhookResult Webhooks { get; init; }
    public required EventStreamsResult EventStreams { get; init; }
    public required LongPollsResult LongPolls { get; init; }
    public required ClaimThroughputResult Claims { get; init; }
    public required IReadOnlyDictionary<string, string> Server { get; init; }
    public required int? ApiExitCode { get; init; }
    public required double Seconds { get; init; }

    public IEnumerable<(string Scenario, LoadResult Result)> Loads =>
    [
        ("a", Submit), ("b", EndToEnd), ("b2", EndToEndLongPoll), ("b3", EndToEndPolls), ("c", Light), ("d", StatusReads),
        ("g.a", SubmitSeeded), ("g.b", EndToEndSeeded),
        ("i.none", EventStreams.Without), ("i.streams", EventStreams.With),
        ("i.no_long_polls", LongPolls.Without), ("i.long_polls", LongPolls.With),
        .. PeerLoads,
    ];

    private (string Scenario, LoadResult Result)[] PeerLoads => Peer is { } peer ? [("h.ours", peer.Ours), ("h.peer", peer.Peer)] : [];
}

/// <summary>(h): POST, then a poll every <see cref="BenchmarkSettings.PeerPollPause"/> until 200, against each service in turn.</summary>
internal sealed record PeerComparison(LoadResult Ours, LoadResult Peer, PollStats OurPolls, PollStats PeerPolls)
{
    public double Ratio => Peer.PerSecond > 0 ? Ours.PerSecond / Peer.PerSecond : double.NaN;
}

/// <summary>
/// (i): (b)'s load without any event stream, then with <see cref="Streams"/> filtered streams open on the node, in the same
/// run one after the other; what the streams received, and the API's memory with them open.
/// </summary>
internal sealed record EventStreamsResult
{
    public required int Streams { get; init; }
    public required double OpenSeconds { get; init; }
    public required LoadResult Without { get; init; }
    public required LoadResult With { get; init; }
    public required CpuUsage IdleWithStreams { get; init; }
    public required long ResidentBeforeBytes { get; init; }
    public required long ResidentWithStreamsBytes { get; init; }
    public required double GaugeWhileOpen { get; init; }
    public required double GaugeAfterClose { get; init; }

    /// <summary>Events of any name (and <c>done</c> events) all streams received from the window's start to the load's end.</summary>
    public required long Events { get; init; }
    public required long DoneEvents { get; init; }
    public required double EventSeconds { get; init; }

    /// <summary>From a submit (before the POST was sent) to the operation's <c>done</c> event arriving on the probe stream.</summary>
    public required LatencySummary SubmitToDone { get; init; }

    /// <summary>The same, one operation at a time with no other load (the streams still open).</summary>
    public required LatencySummary QuietSubmitToDone { get; init; }

    /// <summary>Operations completed in the window whose <c>done</c> event the probe stream never received.</summary>
    public required long DoneMissing { get; init; }

    /// <summary>Operations the load completed while the streams were open (warm-up and window).</summary>
    public required long Completions { get; init; }

    /// <summary>Events (and <c>done</c> events) all streams received while they were open, stragglers included.</summary>
    public required long TotalEvents { get; init; }
    public required long TotalDoneEvents { get; init; }

    public double EventsPerSecond => EventSeconds > 0 ? Events / EventSeconds : double.NaN;
    public double DoneEventsPerSecond => EventSeconds > 0 ? DoneEvents / EventSeconds : double.NaN;

    /// <summary>Events all streams together received per operation completed while they were open: <see cref="Streams"/> done events, plus any status events.</summary>
    public double EventsPerCompletion => Completions > 0 ? (double)TotalEvents / Completions : double.NaN;

    /// <summary>Done events received ÷ (streams × completed operations): 1 when every stream heard of every end.</summary>
    public double DoneShare => Completions > 0 ? (double)TotalDoneEvents / ((double)Streams * Completions) : double.NaN;

    public static double ApiMicrosecondsPerOperation(LoadResult load) => load.Count > 0 ? 1e6 * load.Cpu.Api / load.Count : double.NaN;
}

/// <summary>
/// (i) long-polls: <see cref="Polls"/> operations scheduled a little ahead, a long-poll open on each; (b)'s load without
/// them and while they are open; the API's memory; and, once the operations come due and complete, how long each
/// completion took to reach its long-poll.
/// </summary>
internal sealed record LongPollsResult
{
    public required int Polls { get; init; }
    public required double OpenSeconds { get; init; }
    public required double GaugeWhileOpen { get; init; }
    public required long ResidentBeforeBytes { get; init; }
    public required long ResidentWithPollsBytes { get; init; }
    public required LoadResult Without { get; init; }
    public required LoadResult With { get; init; }

    /// <summary>From an operation's <c>completed_at</c> (the database's clock) to its 200 arriving at the driver (the same machine's clock).</summary>
    public required LatencySummary CompletionToWaiter { get; init; }

    public required int Answered { get; init; }
    public required long Repolls { get; init; }

    /// <summary>Whether the operations came due before the window with the polls open had ended (its figure then includes their completions).</summary>
    public required bool DueDuringWindow { get; init; }

    public double P99Ratio => Without.Latency.P99Ms > 0 ? With.Latency.P99Ms / Without.Latency.P99Ms : double.NaN;
}

/// <summary>(j): a subscription to operation.succeeded, <see cref="Operations"/> no-ops submitted, each delivered to the driver's receiver.</summary>
internal sealed record WebhookResult
{
    public required int Operations { get; init; }
    public required double SubmitSeconds { get; init; }
    public required int Deliveries { get; init; }
    public required long Requests { get; init; }

    /// <summary>Requests without the webhook-id and webhook-signature headers: not counted as deliveries.</summary>
    public required long Unsigned { get; init; }

    /// <summary>From the first delivery to the last one received.</summary>
    public required double Seconds { get; init; }

    /// <summary>From the first submit to the last delivery received.</summary>
    public required CpuUsage Cpu { get; init; }

    public required long DrainBacklog { get; init; }

    public double DeliveriesPerSecond => Seconds > 0 ? Deliveries / Seconds : double.NaN;
}

/// <summary>(k): the same number of pending no-ops, seeded and drained three times, one after the other.</summary>
internal sealed record ClaimThroughputResult(ClaimDrainResult OneTenant, ClaimDrainResult HundredTenants, ClaimDrainResult Capped);

/// <summary>(k): the node's workers draining one backlog of pending no-ops seeded with SQL.</summary>
internal sealed record ClaimDrainResult
{
    public required int Operations { get; init; }
    public required int Tenants { get; init; }

    /// <summary>The kind's cluster-wide cap while the backlog drained; null for none.</summary>
    public required int? KindCap { get; init; }

    /// <summary>The INSERT, VACUUM ANALYZE and CHECKPOINT before the drain.</summary>
    public required double SeedSeconds { get; init; }

    /// <summary>From the first claim (the earliest <c>started_at</c>) to the last handler's end (the latest <c>completed_at</c>).</summary>
    public required double Seconds { get; init; }

    /// <summary>Operations that took more than one attempt: none, unless an attempt broke.</summary>
    public required long Retried { get; init; }

    /// <summary>The claims that took at least one of the operations (their last attempts').</summary>
    public required long Claims { get; init; }

    /// <summary>From the resume of the kind to the driver finding nothing unfinished.</summary>
    public required CpuUsage Cpu { get; init; }

    public double PerSecond => Seconds > 0 ? Operations / Seconds : double.NaN;

    public double MeanBatch => Claims > 0 ? (double)Operations / Claims : double.NaN;

    public double ApiMicrosecondsPerOperation => Operations > 0 ? 1e6 * Cpu.Api / Operations : double.NaN;

    public double PostgresMicrosecondsPerOperation => Operations > 0 ? 1e6 * Cpu.Postgres / Operations : double.NaN;
}

/// <summary>
/// One run of the whole set: a fresh durable cluster, the pgbench reference (e), the API started for real, then
/// (a) submit, (b) end to end, (c) light load, (d) status reads, the seed of finished rows and (g); (f) is the
/// API's peak resident memory at that point. Then the push deliveries, (j) webhooks and (i) event streams, and last (k) the
/// workers' claim throughput, on the same API. The API is stopped and the cluster deleted whatever happens.
/// </summary>
internal sealed class BenchmarkRun(BenchmarkSettings settings, int number, TextWriter progress)
{
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan IdleWindow = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan IdleStreamsWindow = TimeSpan.FromSeconds(3);
    private const string EventStreamsGauge = "pollingapi_event_streams";
    private const string WaitingRequestsGauge = "pollingapi_waiting_requests";
    private const int QuietOperations = 40;

    /// <summary>The kind (k) seeds: the no-op every other scenario submits.</summary>
    private const string ClaimKind = "diagnostics.sleep";

    /// <summary>Operations:MaxConcurrency when neither the environment nor the API's appsettings.json sets it.</summary>
    private const int DefaultHandlerSlots = 32;

    public async Task<RunResult> ExecuteAsync(CancellationToken cancellationToken)
    {
        var total = Stopwatch.StartNew();
        string runDirectory = Path.Combine(settings.RunDirectory, $"run{number.ToString(CultureInfo.InvariantCulture)}");
        Directory.CreateDirectory(runDirectory);
        string pgbench = PgBench.Locate();

        Log("starting a durable PostgreSQL cluster (fsync and synchronous_commit on)");
        await using var cluster = await LocalPostgresCluster.StartAsync(durable: true, cancellationToken);
        await using var database = await BenchmarkDatabase.CreateAsync(cluster, BenchmarkSettings.SelectTableRows, cancellationToken);
        if (settings.Statements)
        {
            Log("loading pg_stat_statements (--statements: a diagnosis run, not a measurement to quote)");
            await BenchmarkDatabase.EnableStatementsAsync(cluster, cancellationToken);
        }

        var cpu = new CpuMeter(cluster.Port);
        Log($"PostgreSQL {database.Durability["server_version"]} on 127.0.0.1:{cluster.Port}: " +
            $"fsync={database.Durability["fsync"]}, synchronous_commit={database.Durability["synchronous_commit"]}");

        // pgbench reads its scripts as the current (root) user; they live in the run folder.
        string insertScript = Path.Combine(runDirectory, "insert.sql");
        string selectScript = Path.Combine(runDirectory, "select.sql");
        await File.WriteAllTextAsync(insertScript, PgBench.InsertScript, cancellationToken);
        await File.WriteAllTextAsync(selectScript, PgBench.SelectScript, cancellationToken);
        var insert = await PgBenchAsync(pgbench, cluster.Port, insertScript, "single-row INSERT", cpu, cancellationToken);
        var select = await PgBenchAsync(pgbench, cluster.Port, selectScript, "prepared primary-key SELECT", cpu, cancellationToken);

        using var http = ApiSteps.CreateHttpClient(settings.Clients);
        // Authenticated as a deployment is: one tenant's key, made with the API's own command, on every request.
        string apiConnectionString = cluster.ConnectionStringFor(BenchmarkDatabase.ApiDatabase);
        string apiKey = await ApiKeyCommand.CreateAsync(LoopbackApiProcess.DotnetHost, settings.ApiDll,
            apiConnectionString, "bench", ApiKeyCommand.ClientScopes, "bench", cancellationToken);
        http.DefaultRequestHeaders.Add(ApiSteps.ApiKeyHeader, apiKey);
        // (k) changes a kind's settings as an operator does, with a key of the admin scope alone.
        string adminKey = await ApiKeyCommand.CreateAsync(LoopbackApiProcess.DotnetHost, settings.ApiDll,
            apiConnectionString, "bench", ["admin"], "bench-admin", cancellationToken);
        Log("starting the API (Release, Production, from its output folder)");
        await using var api = await ApiProcess.StartAsync(settings.ApiDll, apiConnectionString, ApiEnvironment(settings),
            Path.Combine(runDirectory, "api"), http, cancellationToken);
        cpu.ApiPid = api.Pid;
        Log($"API pid {api.Pid} on {api.BaseAddress}");

        var steps = new ApiSteps(http, api.BaseAddress, BenchmarkSettings.WaitSeconds);
        var window = new LoadWindow(settings.Warmup, settings.Window, 0, settings.Window);

        if (settings.ApiWarmup > TimeSpan.Zero)
        {
            // Every path the scenarios take (submit, Prefer: wait, long-poll GET), so that the measured windows find the
            // hot code compiled at its final tier: the service being measured has been running for a while.
            var warmup = await LoadAsync("API warm-up (submit, submit + Prefer: wait, submit + long-poll, mixed)", settings.Clients,
                new LoadWindow(TimeSpan.Zero, settings.ApiWarmup, 0, settings.ApiWarmup),
                (_, sequence, ct) => (sequence % 3) switch
                {
                    0 => steps.SubmitAsync(ct),
                    1 => steps.SubmitAndWaitAsync(WaitMode.Prefer, ct),
                    _ => steps.SubmitAndWaitAsync(WaitMode.LongPoll, ct),
                }, api, cpu, database, cancellationToken);
            if (warmup.Errors > 0)
            {
                throw new InvalidOperationException($"The API warm-up got {warmup.Errors} error answers, e.g. {warmup.ErrorSamples[0]}");
            }

            await DrainAsync(database, "the API warm-up", cancellationToken);
        }

        var submit = await LoadAsync("(a) submit only", settings.Clients, window, (_, _, ct) => steps.SubmitAsync(ct), api, cpu, database, cancellationToken);
        var submitDrain = await DrainAsync(database, "(a)", cancellationToken);

        var endToEnd = await LoadAsync("(b) end to end", settings.Clients, window,
            (_, _, ct) => steps.SubmitAndWaitAsync(settings.WaitMode, ct), api, cpu, database, cancellationToken);
        await DrainAsync(database, "(b)", cancellationToken);

        // (b2) and (b3): what a generic client does with the 202 instead of Prefer: wait.
        var endToEndLongPoll = await LoadAsync("(b2) end to end, POST then GET ?wait=", settings.Clients, window,
            (_, _, ct) => steps.SubmitAndWaitAsync(WaitMode.LongPoll, ct), api, cpu, database, cancellationToken);
        await DrainAsync(database, "(b2)", cancellationToken);
        var polls = new PollStats();
        var endToEndPolls = await LoadAsync("(b3) end to end, POST then polls honouring Retry-After", settings.Clients, window,
            (_, _, ct) => steps.SubmitThenPollAsync(polls, ct), api, cpu, database, cancellationToken);
        await DrainAsync(database, "(b3)", cancellationToken);
        var peerComparison = settings.PeerDll is { } peerDll
            ? await PeerComparisonAsync(peerDll, steps, http, cluster, api, cpu, database, window, runDirectory, cancellationToken)
            : null;

        // At least LightOperations operations, whatever the window; bounded at 10 times the window (and a minute).
        var lightWindow = new LoadWindow(settings.Warmup, settings.Window, settings.LightOperations,
            TimeSpan.FromSeconds(Math.Max(60, settings.Window.TotalSeconds * 10)));
        var light = await LoadAsync("(c) light load", 1, lightWindow,
            (_, _, ct) => steps.SubmitAndWaitAsync(settings.WaitMode, ct), api, cpu, database, cancellationToken);
        await DrainAsync(database, "(c)", cancellationToken);

        var ids = await database.FinishedIdsAsync(1000, cancellationToken);
        if (ids.Length == 0)
        {
            throw new InvalidOperationException("No succeeded operation to read in (d).");
        }

        var reads = await LoadAsync("(d) status reads", settings.Clients, window,
            (client, sequence, ct) => steps.ReadFinishedAsync(ids[(int)((client * 7919L + sequence) % ids.Length)], ct), api, cpu, database, cancellationToken);
        long peakBeforeSeed = api.ReadMemory().PeakResident;

        long rowsBefore = await database.CountOperationsAsync(cancellationToken);
        Log($"(g) inserting {settings.SeedRows:N0} finished operations next to the {rowsBefore:N0} the run made, then VACUUM ANALYZE and CHECKPOINT");
        var seedWatch = Stopwatch.StartNew();
        await database.SeedFinishedOperationsAsync(settings.SeedRows, cancellationToken);
        double seedSeconds = seedWatch.Elapsed.TotalSeconds;
        Log($"(g) seeded in {seedSeconds:0.0} s");
        EnsureAlive(api);

        var submitSeeded = await LoadAsync("(g) submit only, seeded table", settings.Clients, window,
            (_, _, ct) => steps.SubmitAsync(ct), api, cpu, database, cancellationToken);
        var submitSeededDrain = await DrainAsync(database, "(g)(a)", cancellationToken);
        var endToEndSeeded = await LoadAsync("(g) end to end, seeded table", settings.Clients, window,
            (_, _, ct) => steps.SubmitAndWaitAsync(settings.WaitMode, ct), api, cpu, database, cancellationToken);
        await DrainAsync(database, "(g)(b)", cancellationToken);

        // What the API costs when nobody calls it (its fallback polls, jobs and timers), once its JIT has settled.
        await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
        var idleStart = cpu.Snapshot();
        await Task.Delay(IdleWindow, cancellationToken);
        var idle = CpuMeter.Between(idleStart, cpu.Snapshot());
        Log($"API idle after the run: {CpuLine(idle)}");

        var (peak, resident) = api.ReadMemory();
        Log($"(f) API peak resident memory {peak / 1048576.0:0} MB (now {resident / 1048576.0:0} MB)");

        // The push scenarios come last, so that every figure above (memory and idle CPU included) is what it was without
        // them. (j) before (i): once a filtered stream has been open, the node's change feed keeps reading every change for
        // five minutes, which (j) would pay for.
        var webhooks = await WebhooksAsync(steps, api, cpu, database, cancellationToken);
        // The long-polls before the event streams: 1,000 streams leave the node's heap a few hundred MB larger for a while,
        // which (i)'s memory figure for the long-polls would otherwise include.
        var longPolls = await LongPollsAsync(steps, api, cpu, database, apiKey, window, cancellationToken);
        var eventStreams = await EventStreamsAsync(steps, api, cpu, database, apiKey, window, cancellationToken);

        // (k) last: it adds three backlogs' worth of rows to the table and changes the kind's settings (put back after it).
        // The change feed (i) started is still running (five minutes after its last stream closed): the three drains all
        // pay for its reads of every changed row alike.
        var claims = await ClaimThroughputAsync(steps, api, cpu, database, adminKey, cancellationToken);

        int? exitCode = await api.StopAsync(cancellationToken);
        if (exitCode != 0)
        {
            Log($"warning: the API exited with {exitCode?.ToString(CultureInfo.InvariantCulture) ?? "nothing (killed after 45 s)"} on SIGTERM");
        }

        return new RunResult
        {
            Insert = insert,
            Select = select,
            Idle = idle,
            Submit = submit,
            SubmitDrain = (submitDrain.Backlog, submitDrain.Elapsed.TotalSeconds),
            EndToEnd = endToEnd,
            EndToEndLongPoll = endToEndLongPoll,
            EndToEndPolls = endToEndPolls,
            Polls = polls,
            Peer = peerComparison,
            Light = light,
            StatusReads = reads,
            PeakResidentBytes = peak,
            PeakResidentBeforeSeedBytes = peakBeforeSeed,
            SeededRows = settings.SeedRows,
            SeedSeconds = seedSeconds,
            RowsBeforeSeeded = rowsBefore,
            SubmitSeeded = submitSeeded,
            SubmitSeededDrain = (submitSeededDrain.Backlog, submitSeededDrain.Elapsed.TotalSeconds),
            EndToEndSeeded = endToEndSeeded,
            Webhooks = webhooks,
            EventStreams = eventStreams,
            LongPolls = longPolls,
            Claims = claims,
            Server = database.Durability,
            ApiExitCode = exitCode,
            Seconds = total.Elapsed.TotalSeconds,
        };
    }

    /// <summary>
    /// (h): the same closed loop (POST a no-op, then poll it every <see cref="BenchmarkSettings.PeerPollPause"/> until 200,
    /// the pause a generic client might pick, ignoring <c>Retry-After</c>, which the peer always sets to 1 s) against this
    /// API, then against the Hangfire peer, started now on its own database of the same cluster and warmed up as the API
    /// was. While the peer is measured, the API column of the CPU table is the peer's process (the idle API is "others").
    /// </summary>
    private async Task<PeerComparison> PeerComparisonAsync(string peerDll, ApiSteps steps, HttpClient http, LocalPostgresCluster cluster,
        ApiProcess api, CpuMeter cpu, BenchmarkDatabase database, LoadWindow window, string runDirectory, CancellationToken cancellationToken)
    {
        var pause = BenchmarkSettings.PeerPollPause;
        string loop = $"POST, then a poll every {pause.TotalMilliseconds:0} ms";
        var ourPolls = new PollStats();
        var ours = await LoadAsync($"(h) PollingApi: {loop}", settings.Clients, window,
            (_, _, ct) => steps.SubmitThenPollAsync(ourPolls, ct, pause), api, cpu, database, cancellationToken);
        await DrainAsync(database, "(h)", cancellationToken);

        Log($"(h) starting the Hangfire peer ({peerDll}) on its own database");
        await using var peer = await PeerProcess.StartAsync(peerDll, cluster.ConnectionStringFor(BenchmarkDatabase.PeerDatabase),
            Path.Combine(runDirectory, "peer"), http, cancellationToken);
        var peerSteps = new ApiSteps(http, peer.BaseAddress, BenchmarkSettings.WaitSeconds);
        int? apiPid = cpu.ApiPid;
        cpu.ApiPid = peer.Pid;
        try
        {
            if (settings.ApiWarmup > TimeSpan.Zero)
            {
                await LoadAsync($"(h) Hangfire peer warm-up: {loop}", settings.Clients, new LoadWindow(TimeSpan.Zero, settings.ApiWarmup, 0, settings.ApiWarmup),
                    (_, _, ct) => peerSteps.SubmitThenPollAsync(new PollStats(), ct, pause), api, cpu, database, cancellationToken);
            }

            var peerPolls = new PollStats();
            var theirs = await LoadAsync($"(h) Hangfire peer: {loop}", settings.Clients, window,
                (_, _, ct) => peerSteps.SubmitThenPollAsync(peerPolls, ct, pause), api, cpu, database, cancellationToken);
            if (peer.HasExited)
            {
                throw new InvalidOperationException("The Hangfire peer exited during (h).");
            }

            Log($"(h) PollingApi {ours.PerSecond:0} /s against the peer's {theirs.PerSecond:0} /s: {ours.PerSecond / theirs.PerSecond:0.0}x");
            return new PeerComparison(ours, theirs, ourPolls, peerPolls);
        }
        finally
        {
            cpu.ApiPid = apiPid;
        }
    }

    /// <summary>
    /// (j): a receiver in this process, a subscription of the tenant to operation.succeeded, then
    /// <see cref="BenchmarkSettings.WebhookOperations"/> no-ops submitted by all clients (plain submits, 202); each one's
    /// end stores a delivery operation, which the workers run by POSTing to the receiver. Measured: distinct deliveries
    /// received ÷ the time from the first to the last. The subscription is deleted and the backlog drained afterwards.
    /// </summary>
    private async Task<WebhookResult> WebhooksAsync(ApiSteps steps, ApiProcess api, CpuMeter cpu, BenchmarkDatabase database,
        CancellationToken cancellationToken)
    {
        int operations = settings.WebhookOperations;
        EnsureAlive(api);
        await using var receiver = await DeliveryReceiver.StartAsync(cancellationToken);
        var subscription = await steps.SubscribeWebhookAsync(receiver.Url, "operation.succeeded", cancellationToken);
        Log($"(j) receiver on {receiver.Url}; submitting {operations:N0} no-ops with {settings.Clients} clients, each delivered there");

        var cpuStart = cpu.Snapshot();
        var submitting = Stopwatch.StartNew();
        long next = 0;
        long errors = 0;
        string? firstError = null;
        await Task.WhenAll(Enumerable.Range(0, settings.Clients).Select(_ => Task.Run(async () =>
        {
            while (Interlocked.Increment(ref next) <= operations)
            {
                var outcome = await steps.SubmitAsync(cancellationToken);
                if (outcome.Error is not null)
                {
                    Interlocked.Increment(ref errors);
                    Interlocked.CompareExchange(ref firstError, outcome.Error, null);
                }
            }
        }, CancellationToken.None)));
        double submitSeconds = submitting.Elapsed.TotalSeconds;
        if (errors > 0)
        {
            throw new InvalidOperationException($"(j) got {errors} error answers to its submits, e.g. {firstError}");
        }

        bool all = await receiver.WaitForAsync(operations, DrainTimeout, cancellationToken);
        var cpuEnd = cpu.Snapshot();
        EnsureAlive(api);
        if (!all)
        {
            throw new TimeoutException(
                $"(j) the receiver got {receiver.Deliveries} of {operations} deliveries within {DrainTimeout.TotalSeconds:0} s of the last submit.");
        }

        var (first, last) = receiver.Arrivals;
        double seconds = Stopwatch.GetElapsedTime(first, last).TotalSeconds;
        var usage = CpuMeter.Between(cpuStart, cpuEnd);
        await steps.DeleteWebhookAsync(subscription, cancellationToken);
        var drain = await DrainAsync(database, "(j)", cancellationToken);
        var result = new WebhookResult
        {
            Operations = operations,
            SubmitSeconds = submitSeconds,
            Deliveries = receiver.Deliveries,
            Requests = receiver.Requests,
            Unsigned = receiver.Unsigned,
            Seconds = seconds,
            Cpu = usage,
            DrainBacklog = drain.Backlog,
        };
        Log($"(j) webhooks: {result.Deliveries} deliveries in {seconds:0.00} s from the first to the last, {result.DeliveriesPerSecond:0} /s " +
            $"({result.Requests} requests; submits took {submitSeconds:0.00} s); {CpuLine(usage)}");
        return result;
    }

    /// <summary>
    /// (i): (b)'s load for a window with no event stream open, then <see cref="BenchmarkSettings.EventStreams"/> filtered
    /// streams opened and held (a few seconds idle first), then the same load again. The streams' events are counted from
    /// the second window's start to its end; one stream notes when each operation's <c>done</c> arrived, to be matched with
    /// the load's submits.
    /// </summary>
    private async Task<EventStreamsResult> EventStreamsAsync(ApiSteps steps, ApiProcess api, CpuMeter cpu, BenchmarkDatabase database,
        string apiKey, LoadWindow window, CancellationToken cancellationToken)
    {
        int count = BenchmarkSettings.EventStreams;
        // Both windows note every submit the same way, so the driver does the same work in each.
        var submitted = new ConcurrentDictionary<Guid, long>();
        Func<int, long, CancellationToken, Task<StepOutcome>> step = (_, _, ct) =>
        {
            long begin = Stopwatch.GetTimestamp();
            return steps.SubmitAndWaitAsync(settings.WaitMode, ct, id => submitted[id] = begin);
        };

        var without = await LoadAsync("(i) end to end, no event stream open", settings.Clients, window, step, api, cpu, database, cancellationToken);
        await DrainAsync(database, "(i) without streams", cancellationToken);
        submitted.Clear();

        long residentBefore = api.ReadMemory().Resident;
        var opening = Stopwatch.StartNew();
        var streams = await EventStreams.OpenAsync(new Uri(api.BaseAddress, BenchmarkSettings.EventStreamPath), apiKey, count, cancellationToken);
        await using (streams)
        {
            double openSeconds = opening.Elapsed.TotalSeconds;
            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            var idleStart = cpu.Snapshot();
            await Task.Delay(IdleStreamsWindow, cancellationToken);
            var idle = CpuMeter.Between(idleStart, cpu.Snapshot());
            double gauge = await steps.ReadMetricAsync(EventStreamsGauge, cancellationToken);
            Log($"(i) {count:N0} event streams open in {openSeconds:0.0} s ({EventStreamsGauge} {gauge:0}); " +
                $"API resident {api.ReadMemory().Resident / 1048576.0:0} MB (before {residentBefore / 1048576.0:0} MB); idle: {CpuLine(idle)}");

            // The events are counted from the measured window's start (after the warm-up) to the load's end.
            var atStart = Task.Run(async () =>
            {
                await Task.Delay(window.Warmup, cancellationToken);
                return (Stopwatch.GetTimestamp(), streams.Events, streams.DoneEvents);
            }, CancellationToken.None);
            long measureStart = Stopwatch.GetTimestamp() + (long)(window.Warmup.TotalSeconds * Stopwatch.Frequency);
            var with = await LoadAsync($"(i) end to end, {count:N0} event streams open", settings.Clients, window, step, api, cpu, database,
                cancellationToken);
            var (startedAt, eventsAtStart, doneAtStart) = await atStart;
            long endedAt = Stopwatch.GetTimestamp();
            long events = streams.Events - eventsAtStart;
            long done = streams.DoneEvents - doneAtStart;
            long residentWith = api.ReadMemory().Resident;

            // The streams lag behind the completions when the node cannot keep up with the fan-out: wait (bounded) until every
            // stream has had the done event of every operation the load completed, or they stop coming.
            long expectedDone = (long)count * submitted.Count;
            await WaitForEventsAsync(streams, expectedDone, cancellationToken);
            if (streams.Dropped > 0)
            {
                throw new InvalidOperationException(
                    $"{streams.Dropped} of the {count} event streams ended while they should have stayed open, e.g. {string.Join(" | ", streams.DropReasons)}");
            }

            long totalEvents = streams.Events;
            long totalDone = streams.DoneEvents;

            // The same latency without the load: one operation at a time, the next submitted once the last one's done event came.
            var quiet = await QuietSubmitToDoneAsync(steps, streams, cancellationToken);

            var latencies = new List<long>();
            long missing = 0;
            foreach (var (id, begin) in submitted)
            {
                if (begin < measureStart)
                {
                    continue;
                }

                if (streams.DoneArrivals.TryGetValue(id, out long arrived))
                {
                    latencies.Add(arrived - begin);
                }
                else
                {
                    missing++;
                }
            }

            var result = new EventStreamsResult
            {
                Streams = count,
                OpenSeconds = openSeconds,
                Without = without,
                With = with,
                IdleWithStreams = idle,
                ResidentBeforeBytes = residentBefore,
                ResidentWithStreamsBytes = residentWith,
                GaugeWhileOpen = gauge,
                GaugeAfterClose = double.NaN,
                Events = events,
                DoneEvents = done,
                EventSeconds = Stopwatch.GetElapsedTime(startedAt, endedAt).TotalSeconds,
                Completions = submitted.Count,
                TotalEvents = totalEvents,
                TotalDoneEvents = totalDone,
                SubmitToDone = LatencySummary.From([.. latencies]),
                QuietSubmitToDone = quiet,
                DoneMissing = missing,
            };
            Log($"(i) streams received {result.EventsPerSecond:0} events/s ({result.DoneEventsPerSecond:0} done/s) in the window; " +
                $"{result.EventsPerCompletion:0} events per completed operation, {result.DoneShare:0.0000} of the done events due; " +
                $"submit to done on one stream p50 {result.SubmitToDone.P50Ms:0.00} ms, p99 {result.SubmitToDone.P99Ms:0.00} ms " +
                $"({latencies.Count} matched, {missing} without a done event); without the load p50 {quiet.P50Ms:0.00} ms, p99 {quiet.P99Ms:0.00} ms; " +
                $"API resident {residentWith / 1048576.0:0} MB");

            await streams.DisposeAsync();
            var closed = await WaitForGaugeAsync(steps, EventStreamsGauge, 0, TimeSpan.FromSeconds(30), cancellationToken);
            await DrainAsync(database, "(i) with streams", cancellationToken);
            return result with { GaugeAfterClose = closed };
        }
    }

    /// <summary>
    /// (i) long-polls: (b)'s load once without them; then <see cref="BenchmarkSettings.LongPolls"/> no-ops submitted with
    /// <c>Operation-Scheduled-At</c> far enough ahead for the rest, a <c>GET ?wait=</c> long-poll opened on each, the API's
    /// memory read once the node counts them all waiting, (b)'s load again while they are open; then the operations come due,
    /// the workers run them, and each completion's way to its long-poll is timed against the row's <c>completed_at</c>.
    /// </summary>
    private async Task<LongPollsResult> LongPollsAsync(ApiSteps steps, ApiProcess api, CpuMeter cpu, BenchmarkDatabase database,
        string apiKey, LoadWindow window, CancellationToken cancellationToken)
    {
        int count = BenchmarkSettings.LongPolls;
        Func<int, long, CancellationToken, Task<StepOutcome>> step = (_, _, ct) => steps.SubmitAndWaitAsync(settings.WaitMode, ct);
        var without = await LoadAsync("(i) end to end, no long-poll open", settings.Clients, window, step, api, cpu, database, cancellationToken);
        await DrainAsync(database, "(i) without long-polls", cancellationToken);

        // Submitting (about 2 s), opening (a few s) and the window with the polls open must fit before the operations are due.
        var windowLength = window.Warmup + window.Measure;
        var due = TimeProvider.System.GetUtcNow() + TimeSpan.FromSeconds(30) + windowLength;
        var ids = new Guid[count];
        int next = -1;
        await Task.WhenAll(Enumerable.Range(0, settings.Clients).Select(async _ =>
        {
            for (int i = Interlocked.Increment(ref next); i < count; i = Interlocked.Increment(ref next))
            {
                ids[i] = await steps.SubmitScheduledAsync(due, cancellationToken);
            }
        }));

        long residentBefore = api.ReadMemory().Resident;
        var opening = Stopwatch.StartNew();
        await using var pollers = await LongPollers.StartAsync(api.BaseAddress, ApiSteps.ApiKeyHeader, apiKey, ids, BenchmarkSettings.WaitSeconds,
            cancellationToken);
        double gauge = await WaitForGaugeAtLeastAsync(steps, WaitingRequestsGauge, count, TimeSpan.FromSeconds(60), cancellationToken);
        double openSeconds = opening.Elapsed.TotalSeconds;
        await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
        long residentWith = api.ReadMemory().Resident;
        Log($"(i) {count:N0} long-polls open in {openSeconds:0.0} s ({WaitingRequestsGauge} {gauge:0}); API resident {residentWith / 1048576.0:0} MB " +
            $"(before {residentBefore / 1048576.0:0} MB); their operations are due at {due:HH:mm:ss}");

        var with = await LoadAsync($"(i) end to end, {count:N0} long-polls open", settings.Clients, window, step, api, cpu, database, cancellationToken);
        bool dueDuringWindow = TimeProvider.System.GetUtcNow() > due;
        if (pollers.Arrivals.Count > 0 && !dueDuringWindow)
        {
            throw new InvalidOperationException($"{pollers.Arrivals.Count} long-polls were answered before their operations were due.");
        }

        if (!await pollers.WaitForAllAsync(due - TimeProvider.System.GetUtcNow() + TimeSpan.FromSeconds(60), cancellationToken))
        {
            throw new TimeoutException($"{count - pollers.Arrivals.Count} of the {count} long-polls had no answer a minute after their operations were due.");
        }

        if (pollers.ErrorCount > 0)
        {
            throw new InvalidOperationException($"{pollers.ErrorCount} long-polls failed, e.g. {string.Join(" | ", pollers.Errors)}");
        }

        var completedAt = await database.CompletedAtAsync(ids, cancellationToken);
        var latencies = new List<long>(count);
        foreach (var (id, arrived) in pollers.Arrivals)
        {
            if (completedAt.TryGetValue(id, out var completed))
            {
                latencies.Add(Math.Max(0, (long)((arrived - completed).TotalSeconds * Stopwatch.Frequency)));
            }
        }

        var result = new LongPollsResult
        {
            Polls = count,
            OpenSeconds = openSeconds,
            GaugeWhileOpen = gauge,
            ResidentBeforeBytes = residentBefore,
            ResidentWithPollsBytes = residentWith,
            Without = without,
            With = with,
            CompletionToWaiter = LatencySummary.From([.. latencies]),
            Answered = pollers.Arrivals.Count,
            Repolls = pollers.Repolls,
            DueDuringWindow = dueDuringWindow,
        };
        Log($"(i) all {result.Answered:N0} long-polls answered ({result.Repolls} waits ran out and were sent again); completion to its long-poll " +
            $"p50 {result.CompletionToWaiter.P50Ms:0.0} ms, p99 {result.CompletionToWaiter.P99Ms:0.0} ms, max {result.CompletionToWaiter.MaxMs:0.0} ms; " +
            $"(b) p99 {with.Latency.P99Ms:0.00} ms with them open against {without.Latency.P99Ms:0.00} ms without" +
            (dueDuringWindow ? " (WARNING: the operations came due before that window ended)" : ""));
        await DrainAsync(database, "(i) long-polls", cancellationToken);
        return result;
    }

    private static async Task<double> WaitForGaugeAtLeastAsync(ApiSteps steps, string name, double atLeast, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        double value;
        while ((value = await steps.ReadMetricAsync(name, cancellationToken)) < atLeast || double.IsNaN(value))
        {
            if (watch.Elapsed > timeout)
            {
                throw new TimeoutException($"{name} was {value} after {timeout.TotalSeconds:0} s, not at least {atLeast}.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken);
        }

        return value;
    }

    /// <summary>
    /// (k): <see cref="BenchmarkSettings.ClaimOperations"/> pending no-ops seeded with SQL while their kind is paused, then
    /// drained by the node's workers once it is resumed; three times, one after the other: all of one tenant; spread
    /// round-robin over <see cref="BenchmarkSettings.ClaimTenants"/> tenants; of one tenant with the kind capped at the node's
    /// handler slots, so that every claim takes the capped path (a transaction, an advisory lock, a count of running rows)
    /// while the cap itself never holds a slot back. The cap is removed afterwards.
    /// </summary>
    private async Task<ClaimThroughputResult> ClaimThroughputAsync(ApiSteps steps, ApiProcess api, CpuMeter cpu, BenchmarkDatabase database,
        string adminKey, CancellationToken cancellationToken)
    {
        int slots = HandlerSlots(settings);
        var oneTenant = await ClaimDrainAsync("one tenant", ["claims-one"], null, steps, api, cpu, database, adminKey, cancellationToken);
        string[] tenants = [.. Enumerable.Range(0, BenchmarkSettings.ClaimTenants).Select(i => $"claims-{i.ToString("000", CultureInfo.InvariantCulture)}")];
        var hundredTenants = await ClaimDrainAsync($"{tenants.Length} tenants", tenants, null, steps, api, cpu, database, adminKey, cancellationToken);
        var capped = await ClaimDrainAsync($"one tenant, {ClaimKind} capped at {slots}", ["claims-capped"], slots, steps, api, cpu, database,
            adminKey, cancellationToken);
        await steps.PutKindSettingsAsync(ClaimKind, adminKey, paused: false, maxConcurrency: null, cancellationToken);
        Log($"(k) {hundredTenants.PerSecond / oneTenant.PerSecond:0.00} of one tenant's rate with {tenants.Length} tenants, " +
            $"{capped.PerSecond / oneTenant.PerSecond:0.00} with the cap; the cap is removed");
        return new ClaimThroughputResult(oneTenant, hundredTenants, capped);
    }

    private async Task<ClaimDrainResult> ClaimDrainAsync(string name, string[] owners, int? cap, ApiSteps steps, ApiProcess api, CpuMeter cpu,
        BenchmarkDatabase database, string adminKey, CancellationToken cancellationToken)
    {
        int operations = settings.ClaimOperations;
        EnsureAlive(api);
        // Paused, the seeded rows wait until the VACUUM and the CHECKPOINT are over, instead of being claimed during them.
        await steps.PutKindSettingsAsync(ClaimKind, adminKey, paused: true, maxConcurrency: null, cancellationToken);
        var seeding = Stopwatch.StartNew();
        await database.SeedPendingOperationsAsync(operations, owners, cancellationToken);
        double seedSeconds = seeding.Elapsed.TotalSeconds;

        // Saving the settings wakes the node's worker at once (a resumed kind may have work waiting).
        var cpuStart = cpu.Snapshot();
        await steps.PutKindSettingsAsync(ClaimKind, adminKey, paused: false, maxConcurrency: cap, cancellationToken);
        await database.WaitUntilDrainedAsync(owners, DrainTimeout, cancellationToken);
        var usage = CpuMeter.Between(cpuStart, cpu.Snapshot());
        EnsureAlive(api);

        var drained = await database.ReadDrainedAsync(owners, cancellationToken);
        if (drained.Count != operations || drained.Succeeded != operations || drained.FirstStarted is not { } first || drained.LastCompleted is not { } last)
        {
            throw new InvalidOperationException(
                $"(k) {name}: of the {operations} operations seeded, {drained.Count} are in the table and {drained.Succeeded} succeeded.");
        }

        var result = new ClaimDrainResult
        {
            Operations = operations,
            Tenants = owners.Length,
            KindCap = cap,
            SeedSeconds = seedSeconds,
            Seconds = (last - first).TotalSeconds,
            Retried = drained.Retried,
            Claims = drained.Claims,
            Cpu = usage,
        };
        Log($"(k) {name}: {operations:N0} pending operations run in {result.Seconds:0.00} s from the first claim to the last end, " +
            $"{result.PerSecond:0} /s, {result.Claims} claims of {result.MeanBatch:0.0} on average; per operation API {result.ApiMicrosecondsPerOperation:0} µs, PostgreSQL " +
            $"{result.PostgresMicrosecondsPerOperation:0} µs" + (drained.Retried > 0 ? $"; {drained.Retried} took more than one attempt" : "") +
            $" (seeded in {seedSeconds:0.0} s); {CpuLine(usage)}");
        return result;
    }

    /// <summary>
    /// The node's handler slots, Operations:MaxConcurrency, as the API process gets it: from <c>--api-env</c>, else from the
    /// environment it inherits, else from the appsettings.json beside its dll (it runs as Production, which has no settings
    /// file of its own), else the option's default.
    /// </summary>
    private static int HandlerSlots(BenchmarkSettings settings)
    {
        const string Key = "Operations:MaxConcurrency";
        foreach (var (name, value) in settings.ApiEnvironment)
        {
            if (string.Equals(name.Replace("__", ":", StringComparison.Ordinal), Key, StringComparison.OrdinalIgnoreCase))
            {
                return int.Parse(value, CultureInfo.InvariantCulture);
            }
        }

        if (Environment.GetEnvironmentVariable(Key.Replace(":", "__", StringComparison.Ordinal)) is { } inherited)
        {
            return int.Parse(inherited, CultureInfo.InvariantCulture);
        }

        string appSettings = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(settings.ApiDll))!, "appsettings.json");
        if (File.Exists(appSettings))
        {
            using var json = JsonDocument.Parse(File.ReadAllText(appSettings));
            if (json.RootElement.TryGetProperty("Operations", out var operations) && operations.TryGetProperty("MaxConcurrency", out var slots))
            {
                return slots.GetInt32();
            }
        }

        return DefaultHandlerSlots;
    }

    /// <summary>
    /// With the streams open and no other load: <see cref="QuietOperations"/> no-ops one after the other, each from its submit
    /// to its done event on the probe stream; the next is submitted once that event has come (or after 10 s, not counted).
    /// </summary>
    private async Task<LatencySummary> QuietSubmitToDoneAsync(ApiSteps steps, EventStreams streams, CancellationToken cancellationToken)
    {
        var latencies = new List<long>();
        for (int i = 0; i < QuietOperations; i++)
        {
            long begin = Stopwatch.GetTimestamp();
            Guid? submitted = null;
            var outcome = await steps.SubmitAndWaitAsync(settings.WaitMode, cancellationToken, id => submitted = id);
            if (outcome.Error is not null || submitted is not { } id)
            {
                throw new InvalidOperationException($"(i) a submit without load failed: {outcome.Error ?? "no Location"}");
            }

            var deadline = Stopwatch.StartNew();
            while (!streams.DoneArrivals.ContainsKey(id) && deadline.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(TimeSpan.FromMilliseconds(1), cancellationToken);
            }

            if (streams.DoneArrivals.TryGetValue(id, out long arrived))
            {
                latencies.Add(arrived - begin);
            }
        }

        return LatencySummary.From([.. latencies]);
    }

    /// <summary>
    /// Waits until the streams have received <paramref name="expectedDone"/> done events in all, or none came for 3 s, or a
    /// minute has passed.
    /// </summary>
    private static async Task WaitForEventsAsync(EventStreams streams, long expectedDone, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        long seen = streams.DoneEvents;
        var lastProgress = watch.Elapsed;
        while (seen < expectedDone && watch.Elapsed - lastProgress < TimeSpan.FromSeconds(3) && watch.Elapsed < TimeSpan.FromMinutes(1))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
            long now = streams.DoneEvents;
            if (now > seen)
            {
                (seen, lastProgress) = (now, watch.Elapsed);
            }
        }
    }

    /// <summary>Reads the gauge until it is at most <paramref name="atMost"/> or the timeout passes; returns the last value.</summary>
    private static async Task<double> WaitForGaugeAsync(ApiSteps steps, string name, double atMost, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            double value = await steps.ReadMetricAsync(name, cancellationToken);
            if (!(value > atMost) || watch.Elapsed > timeout)
            {
                return value;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken);
        }
    }

    private async Task<PgBenchResult> PgBenchAsync(string pgbench, int port, string script, string what, CpuMeter cpu,
        CancellationToken cancellationToken)
    {
        if (settings.Warmup > TimeSpan.Zero)
        {
            await PgBench.RunAsync(pgbench, port, BenchmarkDatabase.PgBenchDatabase, script, settings.Clients, settings.Warmup, cpu, cancellationToken);
        }

        var result = await PgBench.RunAsync(pgbench, port, BenchmarkDatabase.PgBenchDatabase, script, settings.Clients, settings.Window, cpu,
            cancellationToken);
        Log($"(e) pgbench {what}, {settings.Clients} clients: {result.TransactionsPerSecond:0} tx/s, " +
            $"mean latency {result.AverageLatencyMs:0.00} ms; {CpuLine(result.Cpu)}");
        return result;
    }

    private async Task<LoadResult> LoadAsync(string name, int clients, LoadWindow window, Func<int, long, CancellationToken, Task<StepOutcome>> step,
        ApiProcess api, CpuMeter cpu, BenchmarkDatabase database, CancellationToken cancellationToken)
    {
        EnsureAlive(api);
        if (settings.Statements)
        {
            await database.ResetStatementsAsync(cancellationToken);
        }

        var result = await ClosedLoopLoad.RunAsync(clients, window, step, cpu, cancellationToken);
        EnsureAlive(api);
        if (settings.Statements)
        {
            var top = await database.TopStatementsAsync(12, cancellationToken);
            progress.WriteLine($"top statements of {name} (warm-up and window, {result.Count} counted):");
            foreach (string line in top)
            {
                progress.WriteLine(line);
            }
        }

        Log($"{name}, {clients} client(s): {result.PerSecond:0} /s over {result.ElapsedSeconds:0.0} s ({result.Count} counted); " +
            $"p50 {result.Latency.P50Ms:0.00} ms, p99 {result.Latency.P99Ms:0.00} ms, max {result.Latency.MaxMs:0.0} ms" +
            (result.Fallbacks > 0 ? $"; {result.Fallbacks} long-poll fallbacks" : "") +
            (result.Errors > 0 ? $"; {result.Errors} ERRORS, e.g. {result.ErrorSamples[0]}" : "") +
            $"; {CpuLine(result.Cpu)}");
        return result;
    }

    private async Task<(long Backlog, TimeSpan Elapsed)> DrainAsync(BenchmarkDatabase database, string after, CancellationToken cancellationToken)
    {
        var drain = await database.WaitForBacklogAsync(DrainTimeout, cancellationToken);
        if (drain.Backlog > 0)
        {
            Log($"{after} left {drain.Backlog} unfinished operations; the workers finished them in {drain.Elapsed.TotalSeconds:0.0} s " +
                $"({drain.Backlog / Math.Max(drain.Elapsed.TotalSeconds, 0.001):0} /s)");
        }

        return drain;
    }

    /// <summary>
    /// The diagnostics command the load submits, and limits far above what the load reaches: the rate limiter and the
    /// quota check still run on every request, but never refuse one. <c>--api-env</c> settings come last and win.
    /// </summary>
    private static Dictionary<string, string> ApiEnvironment(BenchmarkSettings settings)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["Diagnostics__Enabled"] = "true",
            ["RateLimiting__PermitsPerSecond"] = "1000000",
            ["RateLimiting__Burst"] = "1000000",
            ["Operations__MaxUnfinishedPerTenant"] = "100000000",
            // (i) holds 10,000 long-polls on the node; the shipped limit is 2,000 connections (see the README's Limits).
            ["Kestrel__Limits__MaxConcurrentConnections"] = "12000",
            // (j) delivers to the driver's receiver on http://127.0.0.1; nothing is delivered anywhere before it subscribes.
            ["Webhooks__AllowHttp"] = "true",
            ["Webhooks__AllowPrivateNetworks"] = "true",
        };
        foreach (var (name, value) in settings.ApiEnvironment)
        {
            environment[name] = value;
        }

        return environment;
    }

    private static void EnsureAlive(ApiProcess api)
    {
        if (api.HasExited)
        {
            throw new InvalidOperationException($"The API process died:{Environment.NewLine}{api.Tail()}");
        }
    }

    private static string CpuLine(CpuUsage cpu) =>
        $"CPU (% of one core) api {cpu.Percent(cpu.Api):0}, postgres {cpu.Percent(cpu.Postgres):0}, " +
        $"driver {cpu.Percent(cpu.Driver + cpu.DriverChildren):0}, others {cpu.Percent(cpu.Others):0}, machine {cpu.Percent(cpu.Machine):0}";

    private void Log(string message) =>
        progress.WriteLine($"[run {number.ToString(CultureInfo.InvariantCulture)} {TimeProvider.System.GetUtcNow():HH:mm:ss}] {message}");
}
