using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using PollingApi.Operations.Lifecycle;
using PollingApi.Operations.Model;
using PollingApi.Operations.Security;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Http;

/// <summary>
/// <c>GET /v1/operations/{id}/events</c>: the operation as server-sent events. Each event's id is the operation's
/// version, so <c>Last-Event-ID</c> resumes on any node, after any restart, without repeats: the stream sends the
/// operation again only when its version is newer than the last one the client has. Every event carries the whole
/// operation, so a client that missed intermediate versions misses nothing it could not see in the latest one.
/// The stream waits on the node's signal fan-out (<see cref="OperationWatchers"/>), so while the operation does not
/// change it costs no query, only a heartbeat comment now and then.
/// </summary>
internal static class OperationEvents
{
    public const string StatusEvent = "status";
    public const string ProgressEvent = "progress";
    public const string DoneEvent = "done";

    /// <summary>The most events a filtered stream writes at once.</summary>
    private const int EventsPerWrite = 64;

    internal static async Task<IResult> StreamAsync(OperationRouteId id, HttpContext http, OperationQueries queries, OperationWatchers watchers,
        OperationQueueEstimator estimator, IOptions<OperationsOptions> options, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json,
        TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        var caller = CallerClaims.Caller(http.User);
        var registration = watchers.Register(id.Value);
        try
        {
            var found = await queries.GetAsync(caller, id.Value, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
            if (found.Row is null)
            {
                return found.Expired
                    ? Problems.OperationExpired(id.Value, options.Value.Retention)
                    : Problems.OperationNotFound(id.Value);
            }

            long lastSent = LastEventId(http.Request);
            if (OperationStatus.IsTerminal(found.Row.Status) && found.Row.Version <= lastSent)
            {
                // The client has the end already: 204 tells an EventSource to stop reconnecting.
                return Results.NoContent();
            }

            using var stream = watchers.OpenStream();
            var writer = new EventWriter(http.Response, json.Value.SerializerOptions);
            await writer.StartAsync(cancellationToken).ConfigureAwait(false);
            string? lastStatus = null;
            string? lastProgress = null;
            var row = found.Row;
            while (true)
            {
                if (row.Version > lastSent)
                {
                    string name = OperationStatus.IsTerminal(row.Status) ? DoneEvent
                        : lastStatus == row.Status && lastProgress != row.Progress ? ProgressEvent
                        : StatusEvent;
                    await writer.WriteEventAsync(row.Version, name, OperationResource.From(row, http.Request, estimator.For(row)), cancellationToken)
                        .ConfigureAwait(false);
                    (lastSent, lastStatus, lastProgress) = (row.Version, row.Status, row.Progress);
                }

                if (OperationStatus.IsTerminal(row.Status))
                {
                    return Results.Empty;
                }

                // Wait for the next change, with a heartbeat comment whenever the interval passes without one.
                while (!await WaitAsync(registration.Changed, options.Value.EventHeartbeatInterval, timeProvider, cancellationToken).ConfigureAwait(false))
                {
                    await writer.WriteCommentAsync("heartbeat", cancellationToken).ConfigureAwait(false);
                }

                registration.Dispose();
                registration = watchers.Register(id.Value);
                var next = await queries.GetAsync(caller, id.Value, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
                if (next.Row is null)
                {
                    // Deleted (or purged) while followed: nothing more will happen to it.
                    return Results.Empty;
                }

                row = next.Row;
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away.
            return Results.Empty;
        }
        finally
        {
            registration.Dispose();
        }
    }

    /// <summary>
    /// <c>GET /v1/operations/events</c>: the same events for every operation of the caller's tenant (an admin's: every
    /// tenant's, or one named by <c>tenant</c>) that matches <c>kind</c> and <c>status</c>. Event ids are this node's
    /// numbering (<c>epoch-sequence</c>); a reconnect with <c>Last-Event-ID</c> resumes without repeats or gaps while the
    /// node still keeps those events (<see cref="OperationChangeFeed.Retention"/>, at most
    /// <see cref="OperationChangeFeed.Capacity"/>); otherwise the stream says so with a <c>: reset</c> comment and goes on
    /// from now.
    /// </summary>
    internal static async Task<IResult> StreamAllAsync(HttpContext http, OperationChangeFeed feed, OperationWatchers watchers,
        OperationQueueEstimator estimator, IOptions<OperationsOptions> options, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json,
        TimeProvider timeProvider, CancellationToken cancellationToken, string? kind = null, string? status = null, string? tenant = null)
    {
        var errors = new Dictionary<string, string[]>();
        if (status is not null && !OperationStatus.All.Contains(status, StringComparer.Ordinal))
        {
            errors["status"] = [$"'status' must be one of {string.Join(", ", OperationStatus.All)}."];
        }

        FilterChecks.Check(kind, null, tenant, errors);
        if (errors.Count > 0)
        {
            return Problems.Validation(errors);
        }

        var caller = CallerClaims.Caller(http.User);
        string? owner = caller.OwnerFilter ?? tenant;
        // Like the list: another tenant's operations are not there for this caller, so nothing matches.
        bool nothingMatches = tenant is not null && owner != tenant;
        bool Matches(OperationRow row) => !nothingMatches && (owner is null || row.Owner == owner)
                                          && (kind is null || row.Kind == kind) && (status is null || row.Status == status);

        using var open = feed.Open();
        using var stream = watchers.OpenStream();
        var writer = new EventWriter(http.Response, json.Value.SerializerOptions);
        try
        {
            await writer.StartAsync(cancellationToken).ConfigureAwait(false);
            long from = feed.Next;
            string lastEventId = http.Request.Headers["Last-Event-ID"].ToString();
            if (lastEventId.Length > 0)
            {
                if (TryParseFeedEventId(lastEventId, feed.Epoch, out long last) && feed.Covers(last + 1))
                {
                    from = last + 1;
                }
                else
                {
                    await writer.WriteCommentAsync("reset: the events after Last-Event-ID are no longer kept here; streaming from now",
                        cancellationToken).ConfigureAwait(false);
                }
            }

            var batch = new StringBuilder();
            while (true)
            {
                // A bounded slice at a time, written before the next is read: a slow client holds back only its own stream.
                var (events, more, skipped) = feed.ReadFrom(from, EventsPerWrite);
                if (skipped)
                {
                    // This stream fell further behind than the node keeps events: say so, as for an unknown Last-Event-ID.
                    batch.Append(": reset: events were dropped while this stream was behind; read GET /v1/operations to catch up\n\n");
                }

                foreach (var change in events)
                {
                    from = change.Sequence + 1;
                    if (Matches(change.Row))
                    {
                        // One serialisation per event and host, shared by every stream that sends it.
                        string self = OperationLinkBuilder.Self(http.Request, change.Row.Id);
                        batch.Append(change.WrittenFor(self, () => EventWriter.Format(
                            $"{feed.Epoch}-{change.Sequence.ToString(CultureInfo.InvariantCulture)}", EventName(change.Row),
                            OperationResource.From(change.Row, self, estimator.For(change.Row)), json.Value.SerializerOptions)));
                    }
                }

                if (batch.Length > 0)
                {
                    // What arrived together goes in one write.
                    await writer.WriteRawAsync(batch.ToString(), cancellationToken).ConfigureAwait(false);
                    batch.Clear();
                }

                if (events.Count == EventsPerWrite)
                {
                    continue;
                }

                while (!await WaitAsync(more, options.Value.EventHeartbeatInterval, timeProvider, cancellationToken).ConfigureAwait(false))
                {
                    await writer.WriteCommentAsync("heartbeat", cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return Results.Empty;
        }
    }

    /// <summary>The event of a change in the filtered stream: done when terminal, progress while running with progress, else status.</summary>
    private static string EventName(OperationRow row) =>
        OperationStatus.IsTerminal(row.Status) ? DoneEvent
        : row.Status == OperationStatus.Running && row.Progress is not null ? ProgressEvent
        : StatusEvent;

    private static bool TryParseFeedEventId(string eventId, string epoch, out long sequence)
    {
        sequence = 0;
        int dash = eventId.IndexOf('-', StringComparison.Ordinal);
        return dash > 0 && eventId.AsSpan(0, dash).SequenceEqual(epoch)
               && long.TryParse(eventId.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out sequence);
    }

    /// <summary>The <c>Last-Event-ID</c> a reconnecting client sends: the version it last saw; -1 when absent or not a version.</summary>
    internal static long LastEventId(HttpRequest request) =>
        long.TryParse(request.Headers["Last-Event-ID"].ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out long version)
            ? version
            : -1;

    private static Task<bool> WaitAsync(Task changed, TimeSpan heartbeat, TimeProvider timeProvider, CancellationToken cancellationToken) =>
        changed.CompletesWithinAsync(heartbeat, timeProvider, cancellationToken);

    /// <summary>Writes the <c>text/event-stream</c> format and flushes every event, so it leaves at once.</summary>
    internal sealed class EventWriter(HttpResponse response, JsonSerializerOptions json)
    {
        public async Task StartAsync(CancellationToken cancellationToken)
        {
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "text/event-stream; charset=utf-8";
            response.Headers.CacheControl = "no-cache, no-store";
            // Proxies that buffer (nginx) pass each event on at once.
            response.Headers["X-Accel-Buffering"] = "no";
            // Reconnect after 2 s when the connection drops (the EventSource default is about 3 s).
            await WriteAsync("retry: 2000\n\n", cancellationToken).ConfigureAwait(false);
        }

        public Task WriteEventAsync<T>(long eventId, string name, T data, CancellationToken cancellationToken) =>
            WriteAsync($"id: {eventId.ToString(CultureInfo.InvariantCulture)}\nevent: {name}\ndata: {JsonSerializer.Serialize(data, json)}\n\n",
                cancellationToken);

        /// <summary>One event in the <c>text/event-stream</c> format.</summary>
        public static string Format<T>(string eventId, string name, T data, JsonSerializerOptions json) =>
            $"id: {eventId}\nevent: {name}\ndata: {JsonSerializer.Serialize(data, json)}\n\n";

        /// <summary>Text already in the event-stream format (see <see cref="Format"/>).</summary>
        public Task WriteRawAsync(string text, CancellationToken cancellationToken) => WriteAsync(text, cancellationToken);

        public Task WriteCommentAsync(string comment, CancellationToken cancellationToken) => WriteAsync($": {comment}\n\n", cancellationToken);

        private async Task WriteAsync(string text, CancellationToken cancellationToken)
        {
            await response.Body.WriteAsync(Encoding.UTF8.GetBytes(text), cancellationToken).ConfigureAwait(false);
            await response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
    }
}
