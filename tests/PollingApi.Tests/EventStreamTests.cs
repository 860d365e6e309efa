using System.Net;
using System.Text;
using System.Text.Json;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>
/// Server-sent events, read raw with HttpClient: one operation's stream (status, progress, done; resume by
/// Last-Event-ID; a finished one at once), the filtered stream of a tenant, heartbeats, and the tenant rules.
/// </summary>
public sealed class EventStreamTests(EventStreamTests.FastHeartbeatFactory factory)
    : IClassFixture<EventStreamTests.FastHeartbeatFactory>, IAsyncLifetime
{
    private static readonly string[] Everything = ["operations:submit", "operations:read", "operations:manage"];
    private HttpClient _client = null!;
    private HttpClient _other = null!;

    /// <summary>A secured node whose idle streams send a heartbeat every 300 ms.</summary>
    public sealed class FastHeartbeatFactory : SecuredPollingApiFactory
    {
        protected override IEnumerable<(string Key, string Value)> MoreSettings => [("Operations:EventHeartbeatInterval", "00:00:00.300")];
    }

    public async Task InitializeAsync()
    {
        _client = factory.CreateClient(await factory.CreateApiKeyAsync("events", Everything));
        _other = factory.CreateClient(await factory.CreateApiKeyAsync("elsewhere", Everything));
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task AFinishedOperationAnswersItsDoneEventAtOnceAndCloses()
    {
        var id = await SubmitAsync("""{"durationMs": 1}""", wait: true);
        long storedVersion = await VersionAsync(id);

        using var response = await OpenAsync($"/v1/operations/{id}/events");
        var events = await ReadToEndAsync(response);

        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("no-cache", response.Headers.CacheControl?.ToString(), StringComparison.Ordinal);
        var done = Assert.Single(events);
        Assert.Equal("done", done.Name);
        Assert.Equal(storedVersion.ToString(System.Globalization.CultureInfo.InvariantCulture), done.Id);
        Assert.Equal(id, done.Data.GetProperty("id").GetGuid());
        Assert.Equal("succeeded", done.Data.GetProperty("status").GetString());
        Assert.Equal(1, done.Data.GetProperty("result").GetProperty("sleptMs").GetInt32());
    }

    [Fact]
    public async Task AStreamFollowsStatusAndProgressUntilDoneThenEnds()
    {
        var id = await SubmitAsync("""{"durationMs": 1500}""", wait: false);

        using var response = await OpenAsync($"/v1/operations/{id}/events");
        var events = await ReadToEndAsync(response);

        var names = events.Select(e => e.Name).ToList();
        Assert.Equal("done", names[^1]);
        Assert.Contains("progress", names);
        var progress = events.First(e => e.Name == "progress");
        Assert.Equal(50, progress.Data.GetProperty("progress").GetProperty("percent").GetInt32());
        Assert.Equal("halfway", progress.Data.GetProperty("progress").GetProperty("message").GetString());
        Assert.Equal("running", progress.Data.GetProperty("status").GetString());
        Assert.Equal("succeeded", events[^1].Data.GetProperty("status").GetString());
        var versions = events.Select(e => long.Parse(e.Id, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(versions.Order().Distinct(), versions);
        Assert.Equal(await VersionAsync(id), versions[^1]);
    }

    [Fact]
    public async Task LastEventIdResumesWithoutRepeatingWhatTheClientHasAndAnIdleStreamSendsHeartbeats()
    {
        var id = await SubmitAsync("""{"durationMs": 60000}""", wait: false);
        await Eventually.WaitUntilAsync(async () => await factory.Operations.StatusOfAsync(id) == "running", TimeSpan.FromSeconds(15));
        long running = await VersionAsync(id);

        // The client has the latest version: nothing is repeated; heartbeats keep the idle stream open until the next change.
        using var upToDate = await OpenAsync($"/v1/operations/{id}/events", lastEventId: running.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var stream = await upToDate.Content.ReadAsStreamAsync();
        string idle = await ReadUntilAsync(stream, text => text.Split(": heartbeat").Length > 2);
        var cancel = await _client.SendAsync(HttpMethod.Post, $"/v1/operations/{id}/cancel", null);
        string rest = await ReadUntilAsync(stream, text => text.Contains("event: done", StringComparison.Ordinal));
        var behind = await ReadToEndAsync(await OpenAsync($"/v1/operations/{id}/events", lastEventId: running.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        long end = await VersionAsync(id);
        using var finished = await (_client).SendAsync(new HttpRequestMessage(HttpMethod.Get, $"/v1/operations/{id}/events")
        {
            Headers = { { "Last-Event-ID", end.ToString(System.Globalization.CultureInfo.InvariantCulture) } },
        });

        Assert.DoesNotContain("event:", idle, StringComparison.Ordinal);
        Assert.True(cancel.Status is HttpStatusCode.OK or HttpStatusCode.Accepted, cancel.ToString());
        var done = ServerSentEvent.ParseAll(rest).Last();
        Assert.Equal("cancelled", done.Data.GetProperty("status").GetString());
        var missed = Assert.Single(behind);
        Assert.Equal("done", missed.Name);
        Assert.Equal(end.ToString(System.Globalization.CultureInfo.InvariantCulture), missed.Id);
        Assert.Equal(HttpStatusCode.NoContent, finished.StatusCode);
    }

    [Fact]
    public async Task ANodeThatStartsAfreshResumesAStreamFromLastEventIdWithoutRepeats()
    {
        var id = await SubmitAsync("""{"durationMs": 2500}""", wait: false);
        using var first = await OpenAsync($"/v1/operations/{id}/events");
        var reader = new EventReader(await first.Content.ReadAsStreamAsync());
        var seen = await reader.NextEventAsync(TimeSpan.FromSeconds(15));
        first.Dispose();

        // Another node, started now, with nothing in memory: what a restarted node (or the next one behind a balancer) is.
        await using var fresh = new OtherNode(factory.DatabaseConnectionString);
        using var client = fresh.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", await factory.CreateApiKeyAsync("events", Everything));
        using var resumed = await OpenAsync($"/v1/operations/{id}/events", lastEventId: seen.Id, client: client);
        var rest = await ReadToEndAsync(resumed);

        Assert.NotEmpty(rest);
        Assert.All(rest, e => Assert.True(long.Parse(e.Id, System.Globalization.CultureInfo.InvariantCulture) > long.Parse(seen.Id,
            System.Globalization.CultureInfo.InvariantCulture), $"Event {e.Id} repeats what the client had ({seen.Id})."));
        Assert.Equal("done", rest[^1].Name);
        Assert.Equal(await VersionAsync(id), long.Parse(rest[^1].Id, System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>A second API node (role Api: it serves, the first node's worker runs) on the same database.</summary>
    private sealed class OtherNode(string connectionString) : Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactory<Program>
    {
        protected override void ConfigureWebHost(Microsoft.AspNetCore.Hosting.IWebHostBuilder builder)
        {
            builder.UseSetting("ConnectionStrings:Operations", connectionString);
            builder.UseSetting("Operations:Role", "Api");
            builder.UseSetting("Authentication:AllowAnonymous", "false");
            builder.UseSetting("Logging:LogLevel:Default", "Warning");
        }
    }

    [Fact]
    public async Task AnotherTenantsOperationHasNoStreamAndAnUnknownOneIsNotFound()
    {
        var id = await SubmitAsync("""{"durationMs": 1}""", wait: true);

        var foreign = await _other.FetchAsync($"/v1/operations/{id}/events");
        var unknown = await _client.FetchAsync($"/v1/operations/{Guid.CreateVersion7()}/events");
        var malformed = await _client.FetchAsync("/v1/operations/not-an-id/events");

        ProblemAssert.IsProblem(foreign, HttpStatusCode.NotFound, "urn:pollingapi:problem:operation-not-found", $"/v1/operations/{id}/events");
        Assert.Equal(HttpStatusCode.NotFound, unknown.Status);
        Assert.Equal(HttpStatusCode.BadRequest, malformed.Status);
    }

    [Fact]
    public async Task TheFilteredStreamSendsTheTenantsMatchingOperationsAndResumesFromLastEventId()
    {
        string tenant = "feed-" + Guid.NewGuid().ToString("N")[..8];
        var client = factory.CreateClient(await factory.CreateApiKeyAsync(tenant, Everything));
        using var response = await OpenAsync("/v1/operations/events?kind=diagnostics.sleep&status=succeeded", client: client);
        var reader = new EventReader(await response.Content.ReadAsStreamAsync());

        var ofOther = await SubmitAsync("""{"durationMs": 1}""", wait: true, _other);
        var failed = await SubmitAsync("""{"durationMs": 1, "failPermanently": true}""", wait: true, client);
        var succeeded = await SubmitAsync("""{"durationMs": 1}""", wait: true, client);
        var first = await reader.NextEventAsync(TimeSpan.FromSeconds(15));

        Assert.Equal("done", first.Name);
        Assert.Equal(succeeded, first.Data.GetProperty("id").GetGuid());
        Assert.NotEqual(ofOther, first.Data.GetProperty("id").GetGuid());
        Assert.NotEqual(failed, first.Data.GetProperty("id").GetGuid());
        response.Dispose();

        // Reconnecting with the last id: what happened meanwhile comes, and nothing already seen.
        var next = await SubmitAsync("""{"durationMs": 1}""", wait: true, client);
        using var resumed = await OpenAsync("/v1/operations/events?kind=diagnostics.sleep&status=succeeded", lastEventId: first.Id, client: client);
        var again = await new EventReader(await resumed.Content.ReadAsStreamAsync()).NextEventAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(next, again.Data.GetProperty("id").GetGuid());

        // An id this node does not know (another node's, or from before a restart): said so, then live from now.
        using var unknown = await OpenAsync("/v1/operations/events", lastEventId: "0123456789ab-5", client: client);
        string text = await ReadUntilAsync(unknown, t => t.Contains(": reset", StringComparison.Ordinal));
        Assert.Contains(": reset", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AFilteredStreamRejectsAnInvalidFilter()
    {
        var response = await _client.FetchAsync("/v1/operations/events?status=sleeping");

        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, "urn:pollingapi:problem:validation-failed", "/v1/operations/events");
        Assert.True(problem.GetProperty("errors").TryGetProperty("status", out _));
    }

    private async Task<long> VersionAsync(Guid id)
    {
        await using var connection = new Npgsql.NpgsqlConnection(factory.DatabaseConnectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand("SELECT version FROM operations WHERE id = @id", connection);
        command.Parameters.AddWithValue("id", id);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private async Task<Guid> SubmitAsync(string json, bool wait, HttpClient? client = null)
    {
        var response = await (client ?? _client).SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody(json),
            request =>
            {
                if (wait)
                {
                    request.Headers.TryAddWithoutValidation("Prefer", "wait=30");
                }
            });
        Assert.True(response.Status is HttpStatusCode.OK or HttpStatusCode.Accepted, response.ToString());
        return response.Json.GetProperty("id").GetGuid();
    }

    private async Task<HttpResponseMessage> OpenAsync(string path, string? lastEventId = null, HttpClient? client = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (lastEventId is not null)
        {
            request.Headers.TryAddWithoutValidation("Last-Event-ID", lastEventId);
        }

        var response = await (client ?? _client).SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return response;
    }

    private static async Task<List<ServerSentEvent>> ReadToEndAsync(HttpResponseMessage response)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        string text = await response.Content.ReadAsStringAsync(timeout.Token);
        return ServerSentEvent.ParseAll(text);
    }

    private static async Task<string> ReadUntilAsync(HttpResponseMessage response, Func<string, bool> enough) =>
        await ReadUntilAsync(await response.Content.ReadAsStreamAsync(), enough);

    private static async Task<string> ReadUntilAsync(Stream stream, Func<string, bool> enough)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var text = new StringBuilder();
        var buffer = new byte[4096];
        while (!enough(text.ToString()))
        {
            int read = await stream.ReadAsync(buffer, timeout.Token);
            Assert.True(read > 0, $"The stream ended before the condition held: {text}");
            text.Append(Encoding.UTF8.GetString(buffer, 0, read));
        }

        return text.ToString();
    }
}

/// <summary>One event of a <c>text/event-stream</c>.</summary>
public sealed record ServerSentEvent(string Id, string Name, JsonElement Data)
{
    public static List<ServerSentEvent> ParseAll(string text) =>
        [.. text.Replace("\r\n", "\n", StringComparison.Ordinal).Split("\n\n").Select(Parse).OfType<ServerSentEvent>()];

    public static ServerSentEvent? Parse(string block)
    {
        string? id = null;
        string? name = null;
        string? data = null;
        foreach (var line in block.Split('\n'))
        {
            if (line.StartsWith("id: ", StringComparison.Ordinal))
            {
                id = line[4..];
            }
            else if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                name = line[7..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                data = line[6..];
            }
        }

        return data is null ? null : new ServerSentEvent(id ?? "", name ?? "message", JsonSerializer.Deserialize<JsonElement>(data));
    }
}

/// <summary>Reads events one by one from an open stream.</summary>
public sealed class EventReader(Stream stream)
{
    private readonly StringBuilder _pending = new();
    private readonly byte[] _buffer = new byte[8192];

    public async Task<ServerSentEvent> NextEventAsync(TimeSpan deadline)
    {
        using var timeout = new CancellationTokenSource(deadline);
        while (true)
        {
            string text = _pending.ToString();
            int end = text.IndexOf("\n\n", StringComparison.Ordinal);
            while (end >= 0)
            {
                _pending.Remove(0, end + 2);
                if (ServerSentEvent.Parse(text[..end]) is { } parsed)
                {
                    return parsed;
                }

                text = _pending.ToString();
                end = text.IndexOf("\n\n", StringComparison.Ordinal);
            }

            int read = await stream.ReadAsync(_buffer, timeout.Token);
            Assert.True(read > 0, "The stream ended before the next event.");
            _pending.Append(Encoding.UTF8.GetString(_buffer, 0, read));
        }
    }
}
