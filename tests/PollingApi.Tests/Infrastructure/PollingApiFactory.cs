using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PollingApi.Operations.Security;
using PollingApi.Operations.Storage;

namespace PollingApi.Tests.Infrastructure;

/// <summary>
/// The API in memory against a real PostgreSQL database of its own (created in <see cref="InitializeAsync"/>,
/// dropped on dispose), with timings small enough for tests. Role <c>All</c>: the node serves the API and runs
/// the worker.
/// </summary>
public class PollingApiFactory : WebApplicationFactory<Program>, IAsyncLifetime
{
    private string? _databaseConnectionString;
    private string? _serverConnectionString;
    private bool _databaseDropped;

    /// <summary>A direct connection string to this factory's database, for assertions.</summary>
    public string DatabaseConnectionString =>
        _databaseConnectionString ?? throw new InvalidOperationException("The factory is not initialised: call InitializeAsync first.");

    /// <summary>What the API logged at Warning and above.</summary>
    public CapturedLogs Logs { get; } = new();

    /// <summary>The operations table of this factory's database.</summary>
    public OperationsTable Operations => new(DatabaseConnectionString);

    /// <summary>The <c>Operations:Role</c> the node runs with.</summary>
    protected virtual string Role => "All";

    public async Task InitializeAsync()
    {
        _databaseConnectionString = await PostgresServer.CreateDatabaseAsync();
        _serverConnectionString = await CreateServerConnectionStringAsync(_databaseConnectionString);

        // Resolving a service starts the host; the migrations run in the background after that.
        string used = Services.GetRequiredService<OperationsDatabase>().ConnectionString;
        if (used != _serverConnectionString)
        {
            throw new InvalidOperationException(
                $"The API does not use the test database: it was given '{_serverConnectionString}' but uses '{used}'.");
        }

        await WaitUntilStartedAsync();
    }

    /// <summary>Waits until the node has reached and migrated its database, so that tests start with a ready node.</summary>
    protected virtual Task WaitUntilStartedAsync() =>
        Services.GetRequiredService<DatabaseStartupGate>().WaitUntilOpenAsync(CancellationToken.None).WaitAsync(ApiReadiness.Deadline);

    /// <summary>The connection string the API is given; by default the database itself.</summary>
    protected virtual Task<string> CreateServerConnectionStringAsync(string databaseConnectionString) =>
        Task.FromResult(databaseConnectionString);

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);

        // UseSetting goes into the host configuration, which WebApplicationFactory hands to Program as arguments,
        // so Program sees it before Build() (where it resolves the connection string).
        builder.UseSetting("ConnectionStrings:Operations", _serverConnectionString
            ?? throw new InvalidOperationException("The factory is not initialised: call InitializeAsync first."));
        builder.UseSetting("Operations:Role", Role);
        builder.UseSetting("Operations:PollInterval", "00:00:00.200");
        builder.UseSetting("Operations:LeaseRescueInterval", "00:00:01");
        builder.UseSetting("Operations:RetryBaseDelay", "00:00:00.050");
        builder.UseSetting("Operations:RetryMaxDelay", "00:00:00.200");
        builder.UseSetting("Operations:ShutdownTimeout", "00:00:02");
        builder.UseSetting("Logging:LogLevel:Default", "Warning");
        // Anonymous test callers are a plain tenant (Development makes them admin too, for the dashboard).
        builder.UseSetting("Authentication:AnonymousScopes", "operations:submit operations:read operations:manage");
        builder.ConfigureServices(services => services.AddSingleton<ILoggerProvider>(Logs));
        foreach (var (key, value) in Settings)
        {
            builder.UseSetting(key, value);
        }
    }

    /// <summary>
    /// Makes an API key for <paramref name="tenant"/> with <paramref name="scopes"/> through the app's own
    /// <c>api-keys create</c> command (run in this process, against this factory's database) and returns it.
    /// </summary>
    public async Task<string> CreateApiKeyAsync(string tenant, params string[] scopes)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        int exitCode = await ApiKeysCommandLine.RunAsync(["api-keys", "create", "--tenant", tenant, "--scopes", string.Join(',', scopes)],
            Services, output, error, CancellationToken.None);
        Assert.True(exitCode == 0, $"api-keys create exited {exitCode}: {error}");
        return output.ToString().Trim();
    }

    /// <summary>A client that sends <paramref name="apiKey"/> in <c>X-Api-Key</c> with every request.</summary>
    public HttpClient CreateClient(string apiKey)
    {
        var client = CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", apiKey);
        return client;
    }

    /// <summary>Further settings of a variant, applied after the defaults above.</summary>
    protected virtual IEnumerable<(string Key, string Value)> Settings => [];

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        if (_databaseConnectionString is not null && !_databaseDropped)
        {
            _databaseDropped = true;
            await PostgresServer.DropDatabaseAsync(_databaseConnectionString);
        }

        GC.SuppressFinalize(this);
    }

    Task IAsyncLifetime.DisposeAsync() => DisposeAsync().AsTask();
}

/// <summary>A node with <c>Operations:Role=Api</c>: no worker runs, so submitted operations stay <c>pending</c>.</summary>
public sealed class ApiOnlyPollingApiFactory : PollingApiFactory
{
    protected override string Role => "Api";
}

/// <summary>A node with <c>Operations:Role=Worker</c>: it runs handlers and serves only health.</summary>
public sealed class WorkerOnlyPollingApiFactory : PollingApiFactory
{
    protected override string Role => "Worker";
}
