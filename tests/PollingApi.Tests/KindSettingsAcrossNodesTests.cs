using System.Net;
using Microsoft.Extensions.DependencyInjection;
using PollingApi.Operations.Worker;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>
/// A kind's settings saved on one node reach the others (an announcement, then every 5 s): an API node pauses a kind, the
/// worker node on the same database stops claiming it, and resumes when told.
/// </summary>
public sealed class KindSettingsAcrossNodesTests : IAsyncLifetime, IDisposable
{
    private const string Sleep = "diagnostics.sleep";
    private readonly AdminApiNodeFactory _api = new();
    private WorkerNodeFactory _worker = null!;
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        await _api.InitializeAsync();
        _worker = new WorkerNodeFactory(_api.DatabaseConnectionString);
        await _worker.InitializeAsync();
        _client = _api.CreateClient();
    }

    public async Task DisposeAsync()
    {
        // The worker node first: it works on the API node's database, which the API node's factory drops.
        await _worker.DisposeAsync();
        await _api.DisposeAsync();
    }

    public void Dispose() => _client?.Dispose();

    [Fact]
    public async Task APauseSavedOnAnApiNodeStopsTheWorkerNodeClaimingTheKindAndAResumeStartsIt()
    {
        var workerSettings = _worker.Services.GetRequiredService<KindSettingsCache>();

        var pause = await _client.SendAsync(HttpMethod.Put, $"/v1/admin/kinds/{Sleep}", PollingApiClient.JsonBody("""{"paused": true}"""));
        await Eventually.WaitUntilAsync(() => Task.FromResult(workerSettings.For(Sleep).Paused), TimeSpan.FromSeconds(15));
        var waiting = await _client.SubmitSleepAsync("""{"durationMs": 1}""");
        var id = waiting.Json.GetProperty("id").GetGuid();
        // Submitted after it, another kind runs on the worker node: it has claimed since, and left the paused kind alone.
        var other = await _client.SendAsync(HttpMethod.Post, "/v1/accounts", PollingApiClient.JsonBody("""{"currency": "EUR", "openingBalance": 0}"""),
            request => request.Headers.TryAddWithoutValidation("Prefer", "wait=30"));

        Assert.Equal(HttpStatusCode.OK, pause.Status);
        Assert.Equal(HttpStatusCode.OK, other.Status);
        Assert.Equal("pending", await _api.Operations.StatusOfAsync(id));

        var resume = await _client.SendAsync(HttpMethod.Put, $"/v1/admin/kinds/{Sleep}", PollingApiClient.JsonBody("""{"paused": false}"""));
        var done = await _client.PollUntilDoneAsync(new Uri($"/v1/operations/{id}", UriKind.Relative), TimeSpan.FromSeconds(30));

        Assert.Equal(HttpStatusCode.OK, resume.Status);
        Assert.Equal("succeeded", done.Json.GetProperty("status").GetString());
        Assert.False(workerSettings.For(Sleep).Paused);
    }

    /// <summary>An API-only node whose anonymous callers are admins.</summary>
    private sealed class AdminApiNodeFactory : PollingApiFactory
    {
        protected override string Role => "Api";

        protected override IEnumerable<(string Key, string Value)> Settings =>
            [("Authentication:AnonymousScopes", "operations:submit operations:read operations:manage admin")];
    }

    /// <summary>A worker-only node on another node's database.</summary>
    private sealed class WorkerNodeFactory(string databaseConnectionString) : PollingApiFactory
    {
        protected override string Role => "Worker";

        protected override Task<string> CreateServerConnectionStringAsync(string ownDatabase) => Task.FromResult(databaseConnectionString);
    }
}
