using Npgsql;

namespace PollingApi.Tests.Infrastructure;

/// <summary>
/// A node that reaches PostgreSQL through a <see cref="TcpProxy"/>, so a test can take the database away and
/// give it back without restarting anything. Pooling is off, so no idle pooled connection hides an outage.
/// </summary>
public sealed class ProxiedPollingApiFactory : PollingApiFactory
{
    private TcpProxy? _proxy;

    public TcpProxy Proxy => _proxy ?? throw new InvalidOperationException("The factory is not initialised: call InitializeAsync first.");

    protected override Task<string> CreateServerConnectionStringAsync(string databaseConnectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(databaseConnectionString);
        string host = builder.Host ?? "localhost";
        if (host.StartsWith('/'))
        {
            throw new InvalidOperationException($"The outage tests need a TCP host to proxy, not the Unix socket '{host}'.");
        }

        _proxy = TcpProxy.Start(host, builder.Port);
        builder.Host = "127.0.0.1";
        builder.Port = _proxy.Port;
        builder.Pooling = false;
        builder.Timeout = 5;
        return Task.FromResult(builder.ConnectionString);
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        _proxy?.Dispose();
    }
}
