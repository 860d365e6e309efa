namespace PollingApi.Tests.Infrastructure;

/// <summary>
/// A node that reaches PostgreSQL through a <see cref="TcpProxy"/>, so a test can take the database away and
/// give it back without restarting anything. Pooling is off, so no idle pooled connection hides an outage.
/// </summary>
public class ProxiedPollingApiFactory : PollingApiFactory
{
    private TcpProxy? _proxy;

    public TcpProxy Proxy => _proxy ?? throw new InvalidOperationException("The factory is not initialised: call InitializeAsync first.");

    protected override Task<string> CreateServerConnectionStringAsync(string databaseConnectionString)
    {
        _proxy = TcpProxy.InFrontOf(databaseConnectionString, out string proxied);
        return Task.FromResult(proxied);
    }

    /// <summary>Short, so that tests of a commit outcome that cannot be settled do not wait long for the answer.</summary>
    public static readonly TimeSpan CommitResolutionTimeout = TimeSpan.FromSeconds(2);

    protected override IEnumerable<(string Key, string Value)> Settings =>
    [
        ("Operations:CommitResolutionTimeout", CommitResolutionTimeout.ToString("c", System.Globalization.CultureInfo.InvariantCulture)),
        .. MoreSettings,
    ];

    /// <summary>Further settings of a variant, applied after the defaults above.</summary>
    protected virtual IEnumerable<(string Key, string Value)> MoreSettings => [];

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        _proxy?.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>A proxied node whose anonymous callers are operators too (scope <c>admin</c>), for the admin endpoints' outage tests.</summary>
public sealed class ProxiedAdminPollingApiFactory : ProxiedPollingApiFactory
{
    protected override IEnumerable<(string Key, string Value)> MoreSettings =>
        [("Authentication:AnonymousScopes", "operations:submit operations:read operations:manage admin")];
}
