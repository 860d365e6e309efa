using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using PollingApi.Benchmarks.Infrastructure;

namespace PollingApi.Benchmarks;

/// <summary>A target on a figure's value or on its ratio to a reference.</summary>
internal sealed record Target(string Text, Func<double, bool> IsMet, bool OnRatio);

/// <summary>One row of the results: how to read it from a run, what it is compared with, and its target.</summary>
internal sealed record Figure(
    string Key,
    string Scenario,
    string Name,
    string Unit,
    Func<RunResult, double> Value,
    Func<RunResult, double>? Ratio = null,
    string? RatioOf = null,
    Target? Target = null);

/// <summary>
/// Turns the runs into the markdown table (scenario, figure, value, ratio to reference, target, result) and the
/// one-line JSON summary. Each value is the median of the runs' values; each ratio is the median of the runs'
/// own ratios (every run is compared with the reference measured on its own cluster, minutes apart at most).
/// </summary>
internal static class BenchmarkReport
{
    private const double Megabyte = 1024 * 1024;

    public static IReadOnlyList<Figure> Figures(BenchmarkSettings settings)
    {
        string clients = $"{settings.Clients.ToString(CultureInfo.InvariantCulture)} clients";
        string seeded = settings.SeedRows.ToString("N0", CultureInfo.InvariantCulture);
        string streams = BenchmarkSettings.EventStreams.ToString("N0", CultureInfo.InvariantCulture);
        string sse = $"(i) {streams} SSE streams";
        string polls = BenchmarkSettings.LongPolls.ToString("N0", CultureInfo.InvariantCulture);
        string longPolls = $"(i) {polls} long-polls";
        string webhookOperations = settings.WebhookOperations.ToString("N0", CultureInfo.InvariantCulture);
        string claims = $"{settings.ClaimOperations.ToString("N0", CultureInfo.InvariantCulture)} pending no-ops";
        string tenants = BenchmarkSettings.ClaimTenants.ToString(CultureInfo.InvariantCulture);
        string peerLoop = $"POST, then a poll every {BenchmarkSettings.PeerPollPause.TotalMilliseconds:0} ms, {clients}";
        Figure[] peer = settings.PeerDll is null ? [] :
        [
            new("h.completed_ops", "(h) against Hangfire", $"PollingApi completed operations/s, {peerLoop}", "ops/s", r => r.Peer?.Ours.PerSecond ?? double.NaN,
                r => r.Peer?.Ratio ?? double.NaN, "the peer", new(">= 30 x the peer", v => v >= 30, true)),
            new("h.peer_completed_ops", "(h) against Hangfire", $"Hangfire peer completed operations/s, {peerLoop}", "ops/s",
                r => r.Peer?.Peer.PerSecond ?? double.NaN),
            new("h.p50_ms", "(h) against Hangfire", "PollingApi submit-to-result p50", "ms", r => r.Peer?.Ours.Latency.P50Ms ?? double.NaN),
            new("h.peer_p50_ms", "(h) against Hangfire", "Hangfire peer submit-to-result p50", "ms", r => r.Peer?.Peer.Latency.P50Ms ?? double.NaN),
        ];
        return
        [
            new("e.insert_tps", "(e) reference", $"pgbench single-row INSERT, {clients}", "tx/s", r => r.Insert.TransactionsPerSecond),
            new("e.select_tps", "(e) reference", $"pgbench prepared primary-key SELECT, {clients}", "tx/s", r => r.Select.TransactionsPerSecond),
            new("a.submit_rps", "(a) submit only", $"POST requests/s, {clients}", "req/s", r => r.Submit.PerSecond,
                r => r.Submit.PerSecond / r.Insert.TransactionsPerSecond, "INSERT", new(">= 1.0 of INSERT", v => v >= 1.0, true)),
            new("a.p50_ms", "(a) submit only", "latency p50", "ms", r => r.Submit.Latency.P50Ms),
            new("a.p99_ms", "(a) submit only", "latency p99", "ms", r => r.Submit.Latency.P99Ms),
            new("a.drain_ops", "(a) submit only", "workers' catch-up after the window", "ops/s", r => DrainRate(r.SubmitDrain)),
            new("b.completed_ops", "(b) end to end", $"completed operations/s, {clients}", "ops/s", r => r.EndToEnd.PerSecond,
                r => r.EndToEnd.PerSecond / r.Insert.TransactionsPerSecond, "INSERT", new(">= 0.60 of INSERT", v => v >= 0.60, true)),
            new("b.p50_ms", "(b) end to end", "submit-to-result p50", "ms", r => r.EndToEnd.Latency.P50Ms),
            new("b.p99_ms", "(b) end to end", "submit-to-result p99", "ms", r => r.EndToEnd.Latency.P99Ms),
            new("b2.completed_ops", "(b2) POST, GET ?wait=", $"completed operations/s, {clients}", "ops/s", r => r.EndToEndLongPoll.PerSecond,
                r => r.EndToEndLongPoll.PerSecond / r.Insert.TransactionsPerSecond, "INSERT", new(">= 0.45 of INSERT", v => v >= 0.45, true)),
            new("b2.p50_ms", "(b2) POST, GET ?wait=", "submit-to-result p50", "ms", r => r.EndToEndLongPoll.Latency.P50Ms),
            new("b3.completed_ops", "(b3) POST, polls", $"completed operations/s, {clients}, polls honouring Retry-After", "ops/s",
                r => r.EndToEndPolls.PerSecond, r => r.EndToEndPolls.PerSecond / r.Insert.TransactionsPerSecond, "INSERT"),
            new("b3.p50_ms", "(b3) POST, polls", "submit-to-result p50", "ms", r => r.EndToEndPolls.Latency.P50Ms),
            new("b3.pending_share", "(b3) POST, polls", "share of polls answered 202 (the operation not done yet)", "",
                r => r.Polls.Polls > 0 ? (double)r.Polls.Pending / r.Polls.Polls : double.NaN),
            new("b3.max_retry_after_s", "(b3) POST, polls", "longest Retry-After a 202 asked for", "s", r => r.Polls.MaxRetryAfter.TotalSeconds,
                Target: new("<= 1 s", v => v <= 1, false)),
            .. peer,
            new("c.p50_ms", "(c) light load", "submit-to-result p50, 1 client", "ms", r => r.Light.Latency.P50Ms,
                Target: new("<= 2 ms", v => v <= 2, false)),
            new("c.p99_ms", "(c) light load", "submit-to-result p99, 1 client", "ms", r => r.Light.Latency.P99Ms,
                Target: new("<= 10 ms", v => v <= 10, false)),
            new("c.operations", "(c) light load", "operations measured", "ops", r => r.Light.Count, Target: new(
                $">= {settings.LightOperations.ToString(CultureInfo.InvariantCulture)}", v => v >= settings.LightOperations, false)),
            new("d.reads_rps", "(d) status reads", $"GET of a finished operation/s, {clients}", "req/s", r => r.StatusReads.PerSecond,
                r => r.StatusReads.PerSecond / r.Select.TransactionsPerSecond, "SELECT", new(">= 1.0 of SELECT", v => v >= 1.0, true)),
            new("d.p99_ms", "(d) status reads", "latency p99", "ms", r => r.StatusReads.Latency.P99Ms),
            new("f.peak_rss_mb", "(f) memory", "API peak resident memory (VmHWM, whole run)", "MB", r => r.PeakResidentBytes / Megabyte,
                Target: new("<= 300 MB", v => v <= 300, false)),
            new("g.submit_rps", $"(g) {seeded} rows", $"POST requests/s, {clients}", "req/s", r => r.SubmitSeeded.PerSecond,
                r => r.SubmitSeeded.PerSecond / r.Submit.PerSecond, "(a)", new(">= 0.80 of (a)", v => v >= 0.80, true)),
            new("g.drain_ops", $"(g) {seeded} rows", "workers' catch-up after the submit window", "ops/s", r => DrainRate(r.SubmitSeededDrain),
                r => DrainRate(r.SubmitSeededDrain) / DrainRate(r.SubmitDrain), "(a)", new(">= 0.80 of (a)", v => v >= 0.80, true)),
            new("g.completed_ops", $"(g) {seeded} rows", $"completed operations/s, {clients}", "ops/s", r => r.EndToEndSeeded.PerSecond,
                r => r.EndToEndSeeded.PerSecond / r.EndToEnd.PerSecond, "(b)", new(">= 0.80 of (b)", v => v >= 0.80, true)),
            new("i.completed_ops_no_streams", sse, $"(b) completed operations/s, {clients}, no stream open", "ops/s",
                r => r.EventStreams.Without.PerSecond),
            new("i.completed_ops", sse, $"(b) completed operations/s, {clients}, {streams} streams open", "ops/s", r => r.EventStreams.With.PerSecond,
                r => r.EventStreams.With.PerSecond / r.EventStreams.Without.PerSecond, "no streams"),
            new("i.api_cpu_us_no_streams", sse, "API CPU per completed operation, no stream open", "µs",
                r => EventStreamsResult.ApiMicrosecondsPerOperation(r.EventStreams.Without)),
            new("i.api_cpu_us", sse, $"API CPU per completed operation, {streams} streams open", "µs",
                r => EventStreamsResult.ApiMicrosecondsPerOperation(r.EventStreams.With),
                r => EventStreamsResult.ApiMicrosecondsPerOperation(r.EventStreams.With) / EventStreamsResult.ApiMicrosecondsPerOperation(r.EventStreams.Without),
                "no streams"),
            new("i.rss_mb", sse, $"API resident memory (VmRSS), {streams} streams open", "MB", r => r.EventStreams.ResidentWithStreamsBytes / Megabyte),
            new("i.events_rps", sse, $"events received/s, all {streams} streams together", "events/s", r => r.EventStreams.EventsPerSecond),
            new("i.events_per_completion", sse, $"events received per completed operation, all {streams} streams together", "events",
                r => r.EventStreams.EventsPerCompletion),
            new("i.submit_to_done_p50_ms", sse, $"submit to its `done` event on one stream, p50, {clients}", "ms", r => r.EventStreams.SubmitToDone.P50Ms),
            new("i.quiet_submit_to_done_p50_ms", sse, "submit to its `done` event on one stream, p50, 1 client", "ms",
                r => r.EventStreams.QuietSubmitToDone.P50Ms),
            new("i.long_polls_rss_mb", longPolls, $"API resident memory (VmRSS), {polls} long-polls open", "MB",
                r => r.LongPolls.ResidentWithPollsBytes / Megabyte, Target: new("<= 400 MB", v => v <= 400, false)),
            new("i.long_polls_to_waiter_p50_ms", longPolls, "an operation's completion to its long-poll's answer, p50", "ms",
                r => r.LongPolls.CompletionToWaiter.P50Ms),
            new("i.long_polls_to_waiter_p99_ms", longPolls, "an operation's completion to its long-poll's answer, p99", "ms",
                r => r.LongPolls.CompletionToWaiter.P99Ms, Target: new("<= 50 ms", v => v <= 50, false)),
            new("i.long_polls_b_p99_ms", longPolls, $"(b) submit-to-result p99, {clients}, {polls} long-polls open", "ms",
                r => r.LongPolls.With.Latency.P99Ms, r => r.LongPolls.P99Ratio, "no long-polls", new("<= 1.25 of no long-polls", v => v <= 1.25, true)),
            new("i.long_polls_b_ops", longPolls, $"(b) completed operations/s, {clients}, {polls} long-polls open", "ops/s",
                r => r.LongPolls.With.PerSecond, r => r.LongPolls.With.PerSecond / r.LongPolls.Without.PerSecond, "no long-polls"),
            new("j.deliveries_rps", "(j) webhooks", $"deliveries/s to a local receiver, {webhookOperations} operations, first to last", "deliveries/s",
                r => r.Webhooks.DeliveriesPerSecond, r => r.Webhooks.DeliveriesPerSecond / r.EndToEnd.PerSecond, "(b)"),
            new("k.one_tenant", "(k) claim throughput", $"workers' rate, {claims} of 1 tenant, first claim to last end", "ops/s",
                r => r.Claims.OneTenant.PerSecond),
            new("k.hundred_tenants", "(k) claim throughput", $"workers' rate, {claims} round-robin over {tenants} tenants", "ops/s",
                r => r.Claims.HundredTenants.PerSecond, r => r.Claims.HundredTenants.PerSecond / r.Claims.OneTenant.PerSecond, "1 tenant"),
            new("k.capped", "(k) claim throughput", $"workers' rate, {claims} of 1 tenant, kind capped at the handler slots", "ops/s",
                r => r.Claims.Capped.PerSecond, r => r.Claims.Capped.PerSecond / r.Claims.OneTenant.PerSecond, "1 tenant"),
        ];
    }

    public static string Markdown(BenchmarkSettings settings, IReadOnlyList<RunResult> runs, double[] loadAverageAtStart)
    {
        var text = new StringBuilder();
        string load = string.Join(' ', loadAverageAtStart.Select(l => l.ToString("0.00", CultureInfo.InvariantCulture)));
        string environment = settings.ApiEnvironment.Count == 0
            ? ""
            : "; API environment changed: " + string.Join(", ", settings.ApiEnvironment.Select(e => $"{e.Key}={e.Value}"));
        if (settings.Statements)
        {
            environment += "; pg_stat_statements loaded (a diagnosis run)";
        }

        text.AppendLine(CultureInfo.InvariantCulture,
            $"PollingApi benchmark: {(runs.Count == 1 ? "1 run" : $"median of {runs.Count} runs")}, {settings.Window.TotalSeconds:0} s windows " +
            $"after {settings.Warmup.TotalSeconds:0} s warm-up, durable PostgreSQL {runs[0].Server["server_version"]} " +
            $"(fsync={runs[0].Server["fsync"]}, synchronous_commit={runs[0].Server["synchronous_commit"]}), {Environment.ProcessorCount} cores, " +
            $"(b)/(c) wait with {(settings.WaitMode == WaitMode.Prefer ? "Prefer: wait" : "GET ?wait= long-polls")}, " +
            $"API warmed up for {settings.ApiWarmup.TotalSeconds:0} s{environment}; load average at start {load}");
        text.AppendLine();
        text.AppendLine("| scenario | figure | value | ratio to reference | target | result |");
        text.AppendLine("|---|---|---:|---:|---|---|");
        foreach (var figure in Figures(settings))
        {
            var (value, _, ratio, _, met) = Evaluate(figure, runs);
            string ratioText = ratio is { } r && !double.IsNaN(r) ? $"{r:0.00} of {figure.RatioOf}" : "";
            string result = met switch { true => "pass", false => "**FAIL**", null => "" };
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {figure.Scenario} | {figure.Name} | {FormatValue(value, figure.Unit)} | {ratioText} | {figure.Target?.Text ?? ""} | {result} |");
        }

        text.AppendLine();
        text.AppendLine("CPU during each measured window, % of one core (median of runs; the machine has " +
                        $"{(100 * Environment.ProcessorCount).ToString(CultureInfo.InvariantCulture)} %):");
        text.AppendLine();
        text.AppendLine("| window | API | PostgreSQL | driver + pgbench | others | machine busy |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|");
        var windows = CpuWindows().ToList();
        if (runs.All(r => r.Peer is not null))
        {
            windows.Add(("(h) PollingApi, POST then polls", r => r.Peer!.Ours.Cpu));
            windows.Add(("(h) Hangfire peer (its process in the API column)", r => r.Peer!.Peer.Cpu));
        }

        foreach (var (name, select) in windows)
        {
            var usages = runs.Select(select).ToList();
            string Cell(Func<CpuUsage, double> part) => Median(usages.Select(u => u.Percent(part(u)))).ToString("0", CultureInfo.InvariantCulture);
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {name} | {Cell(u => u.Api)} | {Cell(u => u.Postgres)} | {Cell(u => u.Driver + u.DriverChildren)} | {Cell(u => u.Others)} | {Cell(u => u.Machine)} |");
        }

        return text.ToString();
    }

    public static string Json(BenchmarkSettings settings, IReadOnlyList<RunResult> runs, DateTimeOffset startedAt, double durationSeconds,
        double[] loadAverageAtStart, long errors, string? failure)
    {
        using var buffer = new MemoryStream();
        // Relaxed escaping: ">=" and "+" stay readable; the line is read by people and JSON parsers, never put into HTML.
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteString("benchmark", "pollingapi");
            json.WriteString("mode", settings.Quick ? "quick" : "full");
            json.WriteString("startedAt", startedAt.ToString("O", CultureInfo.InvariantCulture));
            Number(json, "durationSeconds", durationSeconds);
            json.WriteNumber("runs", runs.Count);
            Number(json, "windowSeconds", settings.Window.TotalSeconds);
            Number(json, "warmupSeconds", settings.Warmup.TotalSeconds);
            Number(json, "apiWarmupSeconds", settings.ApiWarmup.TotalSeconds);
            json.WriteNumber("clients", settings.Clients);
            json.WriteNumber("seedRows", settings.SeedRows);
            json.WriteNumber("claimOperations", settings.ClaimOperations);
            json.WriteString("waitMode", settings.WaitMode == WaitMode.Prefer ? "prefer" : "long-poll");
            json.WriteBoolean("pgStatStatements", settings.Statements);
            json.WriteStartObject("apiEnvironment");
            foreach (var (name, value) in settings.ApiEnvironment)
            {
                json.WriteString(name, value);
            }

            json.WriteEndObject();
            json.WriteStartObject("machine");
            json.WriteNumber("cores", Environment.ProcessorCount);
            json.WriteStartArray("loadAverageAtStart");
            foreach (double load in loadAverageAtStart)
            {
                json.WriteNumberValue(load);
            }

            json.WriteEndArray();
            json.WriteEndObject();
            if (runs.Count > 0)
            {
                json.WriteStartObject("server");
                foreach (var (name, value) in runs[0].Server)
                {
                    json.WriteString(name, value);
                }

                json.WriteEndObject();
            }

            int met = 0;
            int targets = 0;
            json.WriteStartObject("figures");
            foreach (var figure in runs.Count > 0 ? Figures(settings) : [])
            {
                var (value, values, ratio, ratios, pass) = Evaluate(figure, runs);
                json.WriteStartObject(figure.Key);
                Number(json, "value", value);
                json.WriteString("unit", figure.Unit);
                Array(json, "runs", values);
                if (ratio is not null)
                {
                    Number(json, "ratio", ratio.Value);
                    json.WriteString("ratioOf", figure.RatioOf);
                    Array(json, "ratioRuns", ratios!);
                }

                if (figure.Target is not null)
                {
                    json.WriteString("target", figure.Target.Text);
                    json.WriteBoolean("pass", pass ?? false);
                    targets++;
                    met += pass == true ? 1 : 0;
                }

                json.WriteEndObject();
            }

            json.WriteEndObject();
            json.WriteNumber("targetsMet", met);
            json.WriteNumber("targets", targets);

            json.WriteStartObject("cpuPercentOfOneCore");
            foreach (var (name, select) in runs.Count > 0 ? CpuWindows() : [])
            {
                var usages = runs.Select(select).ToList();
                json.WriteStartObject(name);
                Number(json, "api", Median(usages.Select(u => u.Percent(u.Api))));
                Number(json, "postgres", Median(usages.Select(u => u.Percent(u.Postgres))));
                Number(json, "driver", Median(usages.Select(u => u.Percent(u.Driver))));
                Number(json, "driverChildren", Median(usages.Select(u => u.Percent(u.DriverChildren))));
                Number(json, "others", Median(usages.Select(u => u.Percent(u.Others))));
                Number(json, "machine", Median(usages.Select(u => u.Percent(u.Machine))));
                json.WriteEndObject();
            }

            json.WriteEndObject();

            json.WriteStartArray("perRun");
            foreach (var run in runs)
            {
                json.WriteStartObject();
                Number(json, "seconds", run.Seconds);
                Number(json, "seedSeconds", run.SeedSeconds);
                json.WriteNumber("rowsBeforeSeed", run.RowsBeforeSeeded);
                Number(json, "peakResidentBeforeSeedMb", run.PeakResidentBeforeSeedBytes / Megabyte);
                json.WriteNumber("backlogAfterA", run.SubmitDrain.Backlog);
                json.WriteNumber("backlogAfterGa", run.SubmitSeededDrain.Backlog);
                Number(json, "drainSecondsAfterGa", run.SubmitSeededDrain.Seconds);
                if (run.ApiExitCode is { } exit)
                {
                    json.WriteNumber("apiExitCode", exit);
                }
                else
                {
                    json.WriteNull("apiExitCode");
                }

                var sse = run.EventStreams;
                json.WriteStartObject("eventStreams");
                json.WriteNumber("streams", sse.Streams);
                Number(json, "openSeconds", sse.OpenSeconds);
                Number(json, "gaugeWhileOpen", sse.GaugeWhileOpen);
                Number(json, "gaugeAfterClose", sse.GaugeAfterClose);
                Number(json, "residentBeforeMb", sse.ResidentBeforeBytes / Megabyte);
                Number(json, "residentWithStreamsMb", sse.ResidentWithStreamsBytes / Megabyte);
                json.WriteNumber("events", sse.Events);
                json.WriteNumber("doneEvents", sse.DoneEvents);
                Number(json, "eventSeconds", sse.EventSeconds);
                Number(json, "eventsPerSecond", sse.EventsPerSecond);
                Number(json, "doneEventsPerSecond", sse.DoneEventsPerSecond);
                json.WriteNumber("completions", sse.Completions);
                json.WriteNumber("totalEvents", sse.TotalEvents);
                json.WriteNumber("totalDoneEvents", sse.TotalDoneEvents);
                Number(json, "eventsPerCompletion", sse.EventsPerCompletion);
                Number(json, "doneShare", sse.DoneShare);
                Number(json, "apiCpuUsPerOpNoStreams", EventStreamsResult.ApiMicrosecondsPerOperation(sse.Without));
                Number(json, "apiCpuUsPerOpStreams", EventStreamsResult.ApiMicrosecondsPerOperation(sse.With));
                json.WriteNumber("submitToDoneCount", sse.SubmitToDone.Count);
                Number(json, "submitToDoneP50Ms", sse.SubmitToDone.P50Ms);
                Number(json, "submitToDoneP90Ms", sse.SubmitToDone.P90Ms);
                Number(json, "submitToDoneP99Ms", sse.SubmitToDone.P99Ms);
                Number(json, "submitToDoneMaxMs", sse.SubmitToDone.MaxMs);
                json.WriteNumber("doneMissing", sse.DoneMissing);
                json.WriteNumber("quietSubmitToDoneCount", sse.QuietSubmitToDone.Count);
                Number(json, "quietSubmitToDoneP50Ms", sse.QuietSubmitToDone.P50Ms);
                Number(json, "quietSubmitToDoneP99Ms", sse.QuietSubmitToDone.P99Ms);
                Number(json, "quietSubmitToDoneMaxMs", sse.QuietSubmitToDone.MaxMs);
                json.WriteEndObject();

                var hooks = run.Webhooks;
                json.WriteStartObject("webhooks");
                json.WriteNumber("operations", hooks.Operations);
                Number(json, "submitSeconds", hooks.SubmitSeconds);
                json.WriteNumber("deliveries", hooks.Deliveries);
                json.WriteNumber("requests", hooks.Requests);
                json.WriteNumber("unsignedRequests", hooks.Unsigned);
                Number(json, "seconds", hooks.Seconds);
                Number(json, "perSecond", hooks.DeliveriesPerSecond);
                Number(json, "apiCpuUsPerDelivery", hooks.Deliveries > 0 ? 1e6 * hooks.Cpu.Api / hooks.Deliveries : double.NaN);
                Number(json, "postgresCpuUsPerDelivery", hooks.Deliveries > 0 ? 1e6 * hooks.Cpu.Postgres / hooks.Deliveries : double.NaN);
                Number(json, "ratioToGb", hooks.DeliveriesPerSecond / run.EndToEndSeeded.PerSecond);
                json.WriteNumber("backlogAfter", hooks.DrainBacklog);
                json.WriteEndObject();

                json.WriteStartObject("claims");
                foreach (var (name, drain) in ClaimDrains(run))
                {
                    json.WriteStartObject(name);
                    json.WriteNumber("operations", drain.Operations);
                    json.WriteNumber("tenants", drain.Tenants);
                    if (drain.KindCap is { } cap)
                    {
                        json.WriteNumber("kindCap", cap);
                    }
                    else
                    {
                        json.WriteNull("kindCap");
                    }

                    Number(json, "seedSeconds", drain.SeedSeconds);
                    Number(json, "seconds", drain.Seconds);
                    Number(json, "perSecond", drain.PerSecond);
                    json.WriteNumber("retried", drain.Retried);
                    json.WriteNumber("claims", drain.Claims);
                    Number(json, "meanBatch", drain.MeanBatch);
                    Number(json, "cpuWindowSeconds", drain.Cpu.WallSeconds);
                    Number(json, "apiCpuUsPerOp", drain.ApiMicrosecondsPerOperation);
                    Number(json, "postgresCpuUsPerOp", drain.PostgresMicrosecondsPerOperation);
                    json.WriteEndObject();
                }

                json.WriteEndObject();

                foreach (var (scenario, load) in run.Loads)
                {
                    json.WriteStartObject(scenario);
                    json.WriteNumber("count", load.Count);
                    Number(json, "seconds", load.ElapsedSeconds);
                    Number(json, "perSecond", load.PerSecond);
                    Number(json, "p50Ms", load.Latency.P50Ms);
                    Number(json, "p90Ms", load.Latency.P90Ms);
                    Number(json, "p99Ms", load.Latency.P99Ms);
                    Number(json, "maxMs", load.Latency.MaxMs);
                    json.WriteNumber("errors", load.Errors);
                    json.WriteNumber("fallbacks", load.Fallbacks);
                    json.WriteEndObject();
                }

                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteNumber("errors", errors);
            if (failure is null)
            {
                json.WriteNull("failure");
            }
            else
            {
                json.WriteString("failure", failure);
            }

            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static (double Value, double[] Values, double? Ratio, double[]? Ratios, bool? Met) Evaluate(Figure figure, IReadOnlyList<RunResult> runs)
    {
        double[] values = runs.Select(figure.Value).ToArray();
        double value = Median(values);
        double[]? ratios = figure.Ratio is null ? null : runs.Select(figure.Ratio).ToArray();
        double? ratio = ratios is null ? null : Median(ratios);
        bool? met = figure.Target is null ? null
            : figure.Target.OnRatio ? ratio is { } r && figure.Target.IsMet(r)
            : !double.IsNaN(value) && figure.Target.IsMet(value);
        return (value, values, ratio, ratios, met);
    }

    private static IEnumerable<(string Name, Func<RunResult, CpuUsage> Select)> CpuWindows() =>
    [
        ("(e) pgbench INSERT", r => r.Insert.Cpu),
        ("(e) pgbench SELECT", r => r.Select.Cpu),
        ("(a) submit only", r => r.Submit.Cpu),
        ("(b) end to end", r => r.EndToEnd.Cpu),
        ("(b2) POST, GET ?wait=", r => r.EndToEndLongPoll.Cpu),
        ("(b3) POST, polls", r => r.EndToEndPolls.Cpu),
        ("(c) light load", r => r.Light.Cpu),
        ("(d) status reads", r => r.StatusReads.Cpu),
        ("(g) submit only", r => r.SubmitSeeded.Cpu),
        ("(g) end to end", r => r.EndToEndSeeded.Cpu),
        ("API idle, after the run", r => r.Idle),
        ("(j) webhooks, first submit to last delivery", r => r.Webhooks.Cpu),
        ("(i) end to end, no stream open", r => r.EventStreams.Without.Cpu),
        ($"(i) {BenchmarkSettings.EventStreams.ToString("N0", CultureInfo.InvariantCulture)} streams open, idle", r => r.EventStreams.IdleWithStreams),
        ($"(i) end to end, {BenchmarkSettings.EventStreams.ToString("N0", CultureInfo.InvariantCulture)} streams open", r => r.EventStreams.With.Cpu),
        ("(i) end to end, no long-poll open", r => r.LongPolls.Without.Cpu),
        ($"(i) end to end, {BenchmarkSettings.LongPolls.ToString("N0", CultureInfo.InvariantCulture)} long-polls open", r => r.LongPolls.With.Cpu),
        ("(k) drain, 1 tenant", r => r.Claims.OneTenant.Cpu),
        ($"(k) drain, {BenchmarkSettings.ClaimTenants.ToString(CultureInfo.InvariantCulture)} tenants", r => r.Claims.HundredTenants.Cpu),
        ("(k) drain, 1 tenant, kind capped", r => r.Claims.Capped.Cpu),
    ];

    private static IEnumerable<(string Name, ClaimDrainResult Drain)> ClaimDrains(RunResult run) =>
    [
        ("oneTenant", run.Claims.OneTenant), ("hundredTenants", run.Claims.HundredTenants), ("capped", run.Claims.Capped),
    ];

    /// <summary>
    /// How fast the workers finished the backlog a submit window left behind, with no HTTP load: the worker side's
    /// throughput. NaN when there was no backlog to time.
    /// </summary>
    private static double DrainRate((long Backlog, double Seconds) drain) =>
        drain.Backlog == 0 || drain.Seconds <= 0 ? double.NaN : drain.Backlog / drain.Seconds;

    /// <summary>The middle value (the mean of the two middle ones for an even count); NaN values are left out.</summary>
    internal static double Median(IEnumerable<double> values)
    {
        double[] sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        if (sorted.Length == 0)
        {
            return double.NaN;
        }

        int middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }

    private static string FormatValue(double value, string unit) => double.IsNaN(value)
        ? "n/a"
        : unit switch
        {
            "ms" => $"{value.ToString(value < 10 ? "0.00" : "0.0", CultureInfo.InvariantCulture)} ms",
            "MB" => $"{value.ToString("0", CultureInfo.InvariantCulture)} MB",
            "ops" => value.ToString("N0", CultureInfo.InvariantCulture),
            "" => value.ToString("0.00", CultureInfo.InvariantCulture),
            "s" => $"{value.ToString("0.0", CultureInfo.InvariantCulture)} s",
            _ => $"{value.ToString("N0", CultureInfo.InvariantCulture)} {unit}",
        };

    private static void Number(Utf8JsonWriter json, string name, double value)
    {
        if (double.IsFinite(value))
        {
            json.WriteNumber(name, Math.Round(value, 3));
        }
        else
        {
            json.WriteNull(name);
        }
    }

    private static void Array(Utf8JsonWriter json, string name, double[] values)
    {
        json.WriteStartArray(name);
        foreach (double value in values)
        {
            if (double.IsFinite(value))
            {
                json.WriteNumberValue(Math.Round(value, 3));
            }
            else
            {
                json.WriteNullValue();
            }
        }

        json.WriteEndArray();
    }
}
