using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using PollingApi.Operations.Security;

namespace PollingApi.BrowserTests;

/// <summary>
/// The API on a real Kestrel port on 127.0.0.1 (a browser cannot reach an in-memory server) against a PostgreSQL database
/// of its own, with test timings. Callers need keys unless <see cref="AnonymousIsAdmin"/> (Development as shipped).
/// </summary>
public class DashboardHost : WebApplicationFactory<Program>, IAsyncLifetime
{
    private string? _connectionString;

    /// <summary>Whether callers without a key are let in, as the admin development tenant (appsettings.Development.json).</summary>
    protected virtual bool AnonymousIsAdmin => false;

    /// <summary>The API's address, e.g. http://127.0.0.1:41234/.</summary>
    public Uri BaseAddress { get; private set; } = new("http://127.0.0.1/");

    /// <summary>The dashboard's address.</summary>
    public Uri DashboardAddress => new(BaseAddress, "dashboard/");

    public string ConnectionString => _connectionString ?? throw new InvalidOperationException("Not initialised.");

    public async Task InitializeAsync()
    {
        _connectionString = await PostgresServer.CreateDatabaseAsync();
        UseKestrel(kestrel => kestrel.Listen(System.Net.IPAddress.Loopback, 0));
        StartServer();
        string address = (Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()
                          ?? throw new InvalidOperationException("Kestrel reports no addresses.")).Addresses.First();
        BaseAddress = new Uri(address.EndsWith('/') ? address : address + "/");
        // The migrations run in the background once the host has started.
        using var client = CreateApiClient(apiKey: null);
        await ApiReadiness.WaitAsync(client);
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.UseSetting("ConnectionStrings:Operations", ConnectionString);
        builder.UseSetting("Operations:PollInterval", "00:00:00.200");
        builder.UseSetting("Operations:LeaseRescueInterval", "00:00:01");
        builder.UseSetting("Operations:RetryBaseDelay", "00:00:00.050");
        builder.UseSetting("Operations:RetryMaxDelay", "00:00:00.200");
        builder.UseSetting("Operations:ShutdownTimeout", "00:00:02");
        builder.UseSetting("Logging:LogLevel:Default", "Warning");
        builder.UseSetting("Authentication:AllowAnonymous", AnonymousIsAdmin ? "true" : "false");
    }

    /// <summary>Makes an API key through the app's own <c>api-keys create</c> command.</summary>
    public async Task<string> CreateApiKeyAsync(string tenant, params string[] scopes)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        int exitCode = await ApiKeysCommandLine.RunAsync(["api-keys", "create", "--tenant", tenant, "--scopes", string.Join(',', scopes)],
            Services, output, error, CancellationToken.None);
        Assert.True(exitCode == 0, $"api-keys create exited {exitCode}: {error}");
        return output.ToString().Trim();
    }

    /// <summary>A client of the real port that sends <paramref name="apiKey"/> (when given) with every request.</summary>
    public HttpClient CreateApiClient(string? apiKey)
    {
        var client = new HttpClient { BaseAddress = BaseAddress };
        if (apiKey is not null)
        {
            client.DefaultRequestHeaders.Add("X-Api-Key", apiKey);
        }

        return client;
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        if (_connectionString is not null)
        {
            await PostgresServer.DropDatabaseAsync(_connectionString);
            _connectionString = null;
        }

        GC.SuppressFinalize(this);
    }

    Task IAsyncLifetime.DisposeAsync() => DisposeAsync().AsTask();
}

/// <summary>The API as Development ships it: a caller without a key is the admin development tenant.</summary>
public sealed class DevelopmentDashboardHost : DashboardHost
{
    protected override bool AnonymousIsAdmin => true;
}

/// <summary>What the tests submit and read through the API, as a client would.</summary>
public static class ApiCalls
{
    public const string SleepRoute = "v1/diagnostics/sleep";

    /// <summary>Submits a sleep and returns its id (the answer is 202, or 200 with <c>Prefer: wait</c> when it finished in time).</summary>
    public static async Task<Guid> SubmitSleepAsync(this HttpClient client, object body, bool waitForIt = false)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, SleepRoute) { Content = JsonContent.Create(body) };
        if (waitForIt)
        {
            request.Headers.TryAddWithoutValidation("Prefer", "wait=30");
        }

        using var response = await client.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"Submit answered {(int)response.StatusCode}: {text}");
        using var json = JsonDocument.Parse(text);
        return json.RootElement.GetProperty("id").GetGuid();
    }

    /// <summary>The operation as <c>GET /v1/operations/{id}</c> shows it.</summary>
    public static async Task<JsonElement> GetOperationAsync(this HttpClient client, Guid id)
    {
        using var response = await client.GetAsync($"v1/operations/{id}");
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET answered {(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>Waits (with a deadline) until the operation has <paramref name="status"/>.</summary>
    public static async Task WaitForStatusAsync(this HttpClient client, Guid id, string status, TimeSpan? deadline = null)
    {
        string seen = "";
        await Eventually.WaitUntilAsync(async () =>
        {
            seen = (await client.GetOperationAsync(id)).GetProperty("status").GetString()!;
            return seen == status;
        }, deadline ?? TimeSpan.FromSeconds(30), () => seen);
    }
}
