using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using PollingApi.ClientTests.Generated;

namespace PollingApi.ClientTests.Infrastructure;

/// <summary>
/// The API in memory, serving and running operations (role <c>All</c>), against a fresh PostgreSQL database of its
/// own (created in <see cref="InitializeAsync"/>, dropped on dispose), with timings small enough for tests.
/// </summary>
public sealed class ClientTestsFactory : WebApplicationFactory<Program>, IAsyncLifetime
{
    private string? _connectionString;
    private bool _databaseDropped;

    /// <summary>The generated client, talking to the in-memory API through the factory's handler.</summary>
    public PollingApiClient CreatePollingApiClient() => new("http://localhost", CreateClient());

    public async Task InitializeAsync()
    {
        _connectionString = await PostgresServer.CreateDatabaseAsync();
        // Starting the host runs the migrations (in the background): waiting for them here keeps them out of the first test's deadline.
        using var client = CreateClient();
        await ApiReadiness.WaitAsync(client);
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);

        // UseSetting goes into the host configuration, which Program sees before Build() resolves the connection string.
        builder.UseSetting("ConnectionStrings:Operations", _connectionString
            ?? throw new InvalidOperationException("The factory is not initialised: call InitializeAsync first."));
        builder.UseSetting("Operations:Role", "All");
        builder.UseSetting("Operations:PollInterval", "00:00:00.200");
        builder.UseSetting("Operations:RetryBaseDelay", "00:00:00.050");
        builder.UseSetting("Operations:RetryMaxDelay", "00:00:00.200");
        builder.UseSetting("Operations:ShutdownTimeout", "00:00:02");
        builder.UseSetting("Logging:LogLevel:Default", "Warning");
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        if (_connectionString is not null && !_databaseDropped)
        {
            _databaseDropped = true;
            await PostgresServer.DropDatabaseAsync(_connectionString);
        }

        GC.SuppressFinalize(this);
    }

    Task IAsyncLifetime.DisposeAsync() => DisposeAsync().AsTask();
}
