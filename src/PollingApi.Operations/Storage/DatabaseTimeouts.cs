using System.Data.Common;
using Npgsql;

namespace PollingApi.Operations.Storage;

/// <summary>
/// The timeouts the engine's connections run with, unless the connection string sets its own: chosen so that a
/// connection the network has silently cut off (no reset, no answer: a partition, a dead host, a stateful firewall that
/// forgot it) is given up well within a lease (30 s by default), while the longest statements the engine runs (an
/// operator's statistics or failure groups over a million rows, a purge batch: under a second) have ten times what they need.
/// </summary>
/// <remarks>
/// <para>Leases do not depend on them: the lease keeper gives up handlers whose leases it cannot renew before those
/// leases end, whatever the connections do. They decide how soon a stuck statement fails, so that the claim loop, outcome
/// writes and API requests try a fresh connection (or answer 503) instead of waiting, and so how soon a node that was cut
/// off works again once the network heals.</para>
/// <para>A statement that times out is cancelled by Npgsql with a cancel request on a new connection, sent synchronously
/// and bounded by the connect timeout; in a partition that adds up to two connect timeouts (with TLS negotiation) before
/// the connection is broken: a statement sent into a partition fails after 15 to 20 s.</para>
/// <para>Npgsql's own keepalive (<c>Keepalive</c>) stays off on the engine's pool: it pings idle pooled connections from a
/// timer thread and blocks that thread for up to the command timeout on each that does not answer, so in a partition a
/// pool of idle connections would tie up as many thread-pool threads. TCP keepalive covers idle pooled connections
/// instead; the notification listener, which waits on one connection for long, has a data source of its own with
/// Npgsql's keepalive on (<see cref="ListenerKeepaliveSeconds"/>), where the ping runs inside its wait.</para>
/// </remarks>
internal static class DatabaseTimeouts
{
    /// <summary>
    /// Seconds to open a connection (TCP, TLS, authentication) or to wait for a free one in a full pool; also what bounds
    /// each cancel request. A healthy server answers in milliseconds; Npgsql's default is 15 s, half a lease.
    /// </summary>
    public const int ConnectSeconds = 5;

    /// <summary>Seconds a statement may run before it is cancelled (Npgsql's default is 30 s, a whole lease).</summary>
    public const int CommandSeconds = 10;

    /// <summary>Seconds a connection is idle before the kernel sends TCP keepalive probes.</summary>
    public const int TcpKeepaliveSeconds = 5;

    /// <summary>
    /// Seconds between unanswered probes: with Linux's 9 probes, a peer that vanished is found 5 + 9 × 1 = 14 s after the
    /// connection went quiet, and its socket fails at once instead of on the next statement's timeout.
    /// </summary>
    public const int TcpKeepaliveIntervalSeconds = 1;

    /// <summary>
    /// Seconds of silence after which the notification listener's connection pings the server, and how long the answer
    /// may take: a listener cut off is noticed within 10 s (reconnecting, and catching up on what it missed).
    /// </summary>
    public const int ListenerKeepaliveSeconds = 5;

    /// <summary>Sets each timeout the connection string leaves unset.</summary>
    public static void ApplyDefaults(NpgsqlConnectionStringBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var set = SetKeywords(builder);
        if (!set.Contains("Timeout"))
        {
            builder.Timeout = ConnectSeconds;
        }

        if (!set.Contains("Command Timeout"))
        {
            builder.CommandTimeout = CommandSeconds;
        }

        if (!set.Contains("TCP Keepalive") && !set.Contains("TCP Keepalive Time") && !set.Contains("TCP Keepalive Interval"))
        {
            builder.TcpKeepAliveTime = TcpKeepaliveSeconds;
            builder.TcpKeepAliveInterval = TcpKeepaliveIntervalSeconds;
        }
    }

    /// <summary>The notification listener's keepalive, unless the connection string sets one.</summary>
    public static void ApplyListenerKeepalive(NpgsqlConnectionStringBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (!SetKeywords(builder).Contains("Keepalive"))
        {
            builder.KeepAlive = ListenerKeepaliveSeconds;
        }
    }

    private static HashSet<string> SetKeywords(NpgsqlConnectionStringBuilder builder) =>
        ((DbConnectionStringBuilder)builder).Keys.Cast<string>().ToHashSet(StringComparer.OrdinalIgnoreCase);
}
