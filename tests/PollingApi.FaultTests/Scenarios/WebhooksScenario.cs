using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using PollingApi.FaultTests.Infrastructure;

namespace PollingApi.FaultTests.Scenarios;

/// <summary>
/// Webhooks while workers die (SIGKILL): a tenant subscribes a receiver in the harness to the ends of its operations and
/// submits sleeps while workers are killed and replaced. Every end must reach the receiver with the type of the final
/// status, every attempt of one delivery with one webhook-id (and no two operations with the same one), signed the
/// Standard Webhooks way, and every delivery operation must end succeeded. Duplicates (at-least-once) are counted.
/// </summary>
internal sealed class WebhooksScenario(ScenarioContext context)
{
    public const string Name = "webhooks";

    /// <summary>How many operations the load submits without <c>--operations</c>.</summary>
    public const int DefaultOperations = 600;

    private const string DeliveryKind = "webhooks.deliver";
    private const int WorkerCount = 2;
    private const int MaxSubmitTries = 50;

    /// <summary>The receiver answers the first request of a webhook-id 500 this often, so the retries are exercised.</summary>
    private const double ServerErrorChance = 0.05;

    /// <summary>And drops the connection of the first request of a webhook-id this often.</summary>
    private const double DropChance = 0.02;

    private static readonly TimeSpan TerminalDeadlineAfterLastKill = TimeSpan.FromSeconds(90);
    private static readonly string[] EventTypes = ["operation.succeeded", "operation.failed", "operation.cancelled"];

    /// <summary>What the nodes need to deliver over http to a receiver on 127.0.0.1; deployed, both stay off.</summary>
    private static readonly Dictionary<string, string> WebhookSettings = new(StringComparer.Ordinal)
    {
        ["Webhooks__AllowHttp"] = "true",
        ["Webhooks__AllowPrivateNetworks"] = "true",
    };

    private readonly ConcurrentDictionary<Guid, WebhookLoadCommand> _accepted = new();
    private readonly ConcurrentDictionary<string, int> _cancelAnswers = new(StringComparer.Ordinal);
    private int _unavailableRetries;
    private int _transportRetries;

    public async Task<ScenarioReport> RunAsync(CancellationToken cancellationToken)
    {
        var report = new ScenarioReport(Name);
        var settings = context.Settings;
        int operations = settings.Operations ?? DefaultOperations;
        var duration = settings.Duration ?? TimeSpan.FromSeconds(Math.Max(20, operations / 30.0));
        report.Summary["seed"] = settings.Seed;
        report.Summary["operationsRequested"] = operations;

        var (database, launch) = await context.PrepareAsync(Name, cancellationToken);
        await using var databaseScope = database;
        await using var receiver = await WebhookReceiver.StartAsync(settings.Seed, ServerErrorChance, DropChance, cancellationToken);
        await using var sampler = new RunningSampler(database);
        await using var fleet = new NodeFleet(launch with { Settings = WebhookSettings }, context.Http);
        var clock = Stopwatch.StartNew();

        var api = fleet.StartWithoutWaiting("webhooks-api", NodeRole.Api);
        var workers = Enumerable.Range(1, WorkerCount)
            .Select(n => fleet.StartWithoutWaiting($"webhooks-worker-{n}", NodeRole.Worker)).ToList();
        foreach (var node in workers.Prepend(api))
        {
            await fleet.WaitUntilReadyAsync(node, cancellationToken);
        }

        var client = context.Client(api, clock);
        string? secret = await SubscribeAsync(client, receiver.Url, report, cancellationToken);
        if (secret is null)
        {
            await sampler.StopAsync(report);
            return report;
        }

        Console.WriteLine($"  receiver on {receiver.Url}; submitting {operations} sleeps over at least {duration.TotalSeconds:0} s " +
                          $"with {settings.Clients} clients, killing a worker every {settings.KillInterval.TotalSeconds:0} s");
        var loadStart = clock.Elapsed;
        using var loadCancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var load = SubmitLoadAsync(client, operations, duration, report, loadCancellation.Token);
        KillRecord kills;
        try
        {
            kills = await KillWorkersWhileAsync(load, fleet, workers, database, clock, cancellationToken);
        }
        finally
        {
            if (!load.IsCompleted)
            {
                await loadCancellation.CancelAsync();
            }
        }

        await load;
        var loadEnd = clock.Elapsed;
        var lastKill = kills.LastKillAt ?? loadEnd;
        long unfinishedAtLoadEnd = await database.CountUnfinishedAsync(cancellationToken);
        Console.WriteLine($"  load done in {(loadEnd - loadStart).TotalSeconds:0.0} s: {_accepted.Count} accepted, {kills.Count} kills, " +
                          $"{receiver.Count} deliveries received; waiting until the {unfinishedAtLoadEnd} unfinished operations " +
                          "(deliveries included) are terminal");

        // Deliveries are operations: once none is pending or running, every one ended, and a succeeded one was recorded
        // by the receiver before it answered.
        var remaining = lastKill + TerminalDeadlineAfterLastKill - clock.Elapsed;
        var waited = await database.WaitUntilAllTerminalAsync(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero, cancellationToken);
        if (waited is null)
        {
            report.Violation("all-terminal-in-time",
                $"{await database.CountUnfinishedAsync(cancellationToken)} operations (deliveries included) were still not terminal " +
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
        report.Summary["cancelAnswers"] = Counts(_cancelAnswers);

        foreach (var node in workers.Append(api).Where(n => n.HasExited))
        {
            report.Violation("nodes-still-running", $"node {node.NodeId} exited with {node.ExitCode} although it was not killed");
        }

        await sampler.StopAsync(report);
        await CheckAsync(report, database, receiver.Received, secret, cancellationToken);
        return report;
    }

    /// <summary>Subscribes the receiver to every end of the tenant's sleeps; the secret, or null (a violation) when refused.</summary>
    private static async Task<string?> SubscribeAsync(ApiClient client, Uri url, ScenarioReport report, CancellationToken cancellationToken)
    {
        string json = JsonSerializer.Serialize(new { url = url.ToString(), events = EventTypes, kinds = new[] { Kinds.Sleep } });
        var answer = await client.PostAsync("v1/webhooks", json, null, cancellationToken);
        string? secret = null;
        if (answer.Status == 201)
        {
            using var body = JsonDocument.Parse(answer.Body);
            secret = body.RootElement.TryGetProperty("secret", out var value) ? value.GetString() : null;
        }

        if (secret is null || !secret.StartsWith("whsec_", StringComparison.Ordinal))
        {
            report.Violation("subscription-created", $"POST /v1/webhooks {json}: {answer.Describe()}");
            return null;
        }

        return secret;
    }

    /// <summary>Submits the sleeps, paced over <paramref name="duration"/>, and asks to cancel a few of them at once.</summary>
    private async Task SubmitLoadAsync(ApiClient client, int operations, TimeSpan duration, ScenarioReport report,
        CancellationToken cancellationToken)
    {
        var settings = context.Settings;
        var pacing = TimeSpan.FromTicks(duration.Ticks / operations);
        var start = Stopwatch.StartNew();
        int next = -1;
        await Task.WhenAll(Enumerable.Range(0, settings.Clients).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < operations)
            {
                var due = pacing * i - start.Elapsed;
                if (due > TimeSpan.Zero)
                {
                    await Task.Delay(due, cancellationToken);
                }

                var command = WebhookLoad.Next(settings.Seed, i);
                var outcome = await client.SubmitAsync(command.Sleep.Route, command.Sleep.Json, $"webhooks-{i}", MaxSubmitTries, cancellationToken);
                Interlocked.Add(ref _unavailableRetries, outcome.UnavailableAnswers);
                Interlocked.Add(ref _transportRetries, outcome.TransportErrors);
                if ((outcome.Final.Status == 202 || (outcome.Final.Status == 200 && outcome.Final.Replayed)) && outcome.Final.OperationId is { } id)
                {
                    _accepted[id] = command;
                    if (command.Cancel)
                    {
                        // 200 cancelled while pending, 202 requested while running, 409 already ended: any is fine, the
                        // delivery must carry whichever status it ended with.
                        var cancel = await client.SendAsync(HttpMethod.Post, $"v1/operations/{id}/cancel", null, null, cancellationToken);
                        _cancelAnswers.AddOrUpdate(cancel.IsTransportError ? "transportError" : cancel.Status.ToString(CultureInfo.InvariantCulture),
                            1, (_, n) => n + 1);
                    }
                }
                else
                {
                    report.Violation("submit-accepted", $"POST /{command.Sleep.Route} {command.Sleep.Json}: {outcome.Final.Describe()}");
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
            var running = await database.CountRunningByNodeAsync(cancellationToken);
            record.OperationsHeld += running.GetValueOrDefault(victim.NodeId);
            workers[index] = fleet.StartWithoutWaiting($"webhooks-worker-{++nextWorker}", NodeRole.Worker);
        }
    }

    /// <summary>Compares what the receiver got with the operations and deliveries in the database.</summary>
    private async Task CheckAsync(ScenarioReport report, ScenarioDatabase database, IReadOnlyList<ReceivedRequest> received, string secret,
        CancellationToken cancellationToken)
    {
        var rows = await database.ReadOperationsAsync(cancellationToken);
        var ends = rows.Values.Where(r => r.Kind != DeliveryKind).ToDictionary(r => r.Id);
        var deliveries = await database.ReadDeliveriesAsync(cancellationToken);
        var events = received.Select(ReceivedEvent.Parse).ToList();

        foreach (var id in _accepted.Keys.Where(id => !ends.ContainsKey(id)))
        {
            report.Violation("no-accepted-operation-lost", $"{id} was answered 202 but is not in the database");
        }

        // (1) Every end reached the receiver, with the type of the status it ended with.
        var eventsByOperation = events.Where(e => e.OperationId is not null).ToLookup(e => e.OperationId!.Value);
        foreach (var end in ends.Values.Where(r => r.IsTerminal))
        {
            string type = "operation." + end.Status;
            report.Require(eventsByOperation[end.Id].Any(e => e.Type == type), "every-end-delivered",
                () => $"{end.Id} ended {end.Status} ({end.ErrorType}) but the receiver got no {type} for it " +
                      $"({eventsByOperation[end.Id].Count()} other deliveries)");
        }

        foreach (var e in events)
        {
            if (e.OperationId is not { } operationId || e.Type is null)
            {
                report.Violation("delivery-is-an-operation-event", $"{e.Request.WebhookId}: {e.Problem ?? "no data.id or type"}");
                continue;
            }

            if (!ends.TryGetValue(operationId, out var end))
            {
                report.Violation("delivery-names-an-operation-of-the-run", $"{e.Request.WebhookId} is about {operationId}, which is not in the database");
                continue;
            }

            report.Require(e.Type == "operation." + end.Status && e.DataStatus == end.Status, "delivery-matches-the-end",
                () => $"{e.Request.WebhookId} says {e.Type} (data.status {e.DataStatus}) for {operationId}, which ended {end.Status}");
        }

        // (2) One webhook-id per operation's end, on every attempt; never one webhook-id for two operations.
        foreach (var group in events.Where(e => e.OperationId is not null).GroupBy(e => e.OperationId!.Value))
        {
            var ids = group.Select(e => e.Request.WebhookId).Distinct(StringComparer.Ordinal).ToList();
            report.Require(ids.Count == 1, "one-webhook-id-per-operation",
                () => $"{group.Key} was delivered {group.Count()} times under {ids.Count} webhook-ids: {string.Join(", ", ids.Take(3))}");
        }

        foreach (var group in events.GroupBy(e => e.Request.WebhookId, StringComparer.Ordinal))
        {
            var operationIds = group.Select(e => e.OperationId).Distinct().ToList();
            report.Require(operationIds.Count == 1, "distinct-webhook-ids-per-operation",
                () => $"webhook-id {group.Key} came with {operationIds.Count} operations: {string.Join(", ", operationIds.Take(3))}");
        }

        // The webhook-id is the delivery operation's id: each received request is one of the deliveries the trigger stored.
        var deliveryByMessageId = deliveries.ToDictionary(d => "msg_" + d.Id.ToString("N", CultureInfo.InvariantCulture), StringComparer.Ordinal);
        foreach (var e in events)
        {
            report.Require(deliveryByMessageId.TryGetValue(e.Request.WebhookId, out var delivery)
                           && delivery.OperationId == e.OperationId && delivery.EventType == e.Type, "webhook-id-names-its-delivery",
                () => $"{e.Request.WebhookId} ({e.Type} for {e.OperationId}) is not the id of a stored delivery of that event");
        }

        // One subscription: the trigger stores exactly one delivery per end, in the transaction that ends the operation.
        var deliveriesByOperation = deliveries.ToLookup(d => d.OperationId);
        foreach (var end in ends.Values.Where(r => r.IsTerminal))
        {
            int count = deliveriesByOperation[end.Id].Count();
            report.Require(count == 1, "one-delivery-stored-per-end", () => $"{end.Id} ended {end.Status} and has {count} stored deliveries");
        }

        foreach (var delivery in deliveries.Where(d => d.OperationId is not { } id || !ends.ContainsKey(id)))
        {
            report.Violation("one-delivery-stored-per-end", $"delivery {delivery.Id} is about {delivery.OperationId}, which is not in the database");
        }

        // (3) Every delivery ended succeeded: the receiver accepted each one in the end.
        foreach (var delivery in deliveries.Where(d => d.Status != "succeeded"))
        {
            report.Violation("every-delivery-succeeded",
                $"delivery {delivery.Id} ({delivery.EventType} for {delivery.OperationId}) is {delivery.Status} ({delivery.ErrorType}) after {delivery.Attempts} attempts");
        }

        // Signed the Standard Webhooks way, with a fresh timestamp: every request, whatever the receiver answered.
        int verified = 0;
        foreach (var request in received)
        {
            bool valid = WebhookReceiver.SignatureIsValid(request, secret);
            verified += valid ? 1 : 0;
            report.Require(valid, "signature-valid", () => $"{request.WebhookId}: webhook-signature '{request.Signature}' does not verify");
            report.Require(WebhookReceiver.TimestampIsFresh(request), "timestamp-within-tolerance",
                () => $"{request.WebhookId}: webhook-timestamp '{request.Timestamp}' is not within " +
                      $"{WebhookReceiver.TimestampTolerance.TotalMinutes:0} minutes of {request.ReceivedAt:O}");
        }

        // (4) Duplicates are allowed (at-least-once) and counted: a request of a webhook-id the receiver had already
        // answered 200 (its sender died, or lost its lease, before it stored the success).
        var accepted = new HashSet<string>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int duplicates = 0;
        int retriesAfterRefusal = 0;
        foreach (var request in received)
        {
            if (accepted.Contains(request.WebhookId))
            {
                duplicates++;
            }
            else if (!seen.Add(request.WebhookId))
            {
                retriesAfterRefusal++;
            }

            if (request.Answer == ReceiverAnswer.Ok)
            {
                accepted.Add(request.WebhookId);
            }
        }

        report.Summary["accepted"] = _accepted.Count;
        report.Summary["cancelRequested"] = _accepted.Values.Count(c => c.Cancel);
        report.Summary["terminal"] = Counts(ends.Values.Where(r => r.IsTerminal).GroupBy(r => r.Status, StringComparer.Ordinal)
            .Select(g => KeyValuePair.Create(g.Key, g.Count())));
        report.Summary["deliveryOperations"] = Counts(deliveries.GroupBy(d => d.Status, StringComparer.Ordinal)
            .Select(g => KeyValuePair.Create(g.Key, g.Count())));
        report.Summary["deliveryAttempts"] = deliveries.Sum(d => d.Attempts);
        report.Summary["deliveriesReceived"] = received.Count;
        report.Summary["distinctWebhookIds"] = seen.Count;
        report.Summary["receiverAnswers"] = Counts(received.GroupBy(r => r.Answer)
            .Select(g => KeyValuePair.Create(g.Key.ToString(), g.Count())));
        report.Summary["retriesAfterRefusal"] = retriesAfterRefusal;
        report.Summary["duplicates"] = duplicates;
        report.Summary["signaturesVerified"] = verified;
    }

    private static JsonObject Counts(IEnumerable<KeyValuePair<string, int>> counts)
    {
        var json = new JsonObject();
        foreach (var (key, count) in counts.OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            json[key] = count;
        }

        return json;
    }

    private static double Round(TimeSpan span) => Math.Round(span.TotalSeconds, 1);

    private sealed class KillRecord
    {
        public int Count { get; set; }

        public TimeSpan? LastKillAt { get; set; }

        public long OperationsHeld { get; set; }
    }

    /// <summary>A received request's body as the checks need it: the event's type and the operation it is about.</summary>
    private sealed record ReceivedEvent(ReceivedRequest Request, Guid? OperationId, string? Type, string? DataStatus, string? Problem)
    {
        public static ReceivedEvent Parse(ReceivedRequest request)
        {
            try
            {
                using var json = JsonDocument.Parse(request.Body);
                var root = json.RootElement;
                string? type = root.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
                if (!root.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Object)
                {
                    return new ReceivedEvent(request, null, type, null, "no data object");
                }

                Guid? id = data.TryGetProperty("id", out var i) && i.ValueKind == JsonValueKind.String && Guid.TryParse(i.GetString(), out var g)
                    ? g
                    : null;
                string? status = data.TryGetProperty("status", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
                return new ReceivedEvent(request, id, type, status, null);
            }
            catch (JsonException ex)
            {
                return new ReceivedEvent(request, null, null, null, $"the body is not JSON: {ex.Message}");
            }
        }
    }
}

/// <summary>One submit of the webhooks load: a sleep, and whether to ask to cancel it right after the 202.</summary>
internal sealed record WebhookLoadCommand(SleepCommand Sleep, bool Cancel);

/// <summary>
/// The webhooks scenario's mix, a pure function of the seed and the submit's number: sleeps of 0..200 ms, about 10 %
/// failing permanently and 10 % failing once or twice first; about 5 % (of 300..1000 ms) are cancelled right away.
/// </summary>
internal static class WebhookLoad
{
    public static WebhookLoadCommand Next(int seed, int index)
    {
        var random = new Random(unchecked((seed * 1_000_003) + index));
        if (random.NextDouble() < 0.05)
        {
            return new WebhookLoadCommand(new SleepCommand(random.Next(300, 1001), 0, FailPermanently: false), Cancel: true);
        }

        int duration = random.Next(0, 201);
        return random.NextDouble() switch
        {
            < 0.10 => new WebhookLoadCommand(new SleepCommand(duration, 0, FailPermanently: true), Cancel: false),
            < 0.20 => new WebhookLoadCommand(new SleepCommand(duration, random.Next(1, 3), FailPermanently: false), Cancel: false),
            _ => new WebhookLoadCommand(new SleepCommand(duration, 0, FailPermanently: false), Cancel: false),
        };
    }
}
