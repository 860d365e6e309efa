using System.Net;
using System.Net.Sockets;

namespace PollingApi.Testing;

/// <summary>
/// Forwards TCP connections from a loopback port to a PostgreSQL server, and breaks them on demand. Switched off, it
/// stops listening (new connections are refused) and aborts every connection it carries, as an outage would; switched
/// on again, it listens on the same port. Paused, it holds what clients send until it is resumed. Armed with a
/// <see cref="ArmFault"/>, it breaks the one connection that sends a chosen write at the chosen moment: before the
/// write reaches the server, or after the server committed it and before its acknowledgement reaches the client.
/// </summary>
public sealed class TcpProxy : IDisposable
{
    // What a client sent last is kept this long, so that a write split over two reads is still recognised.
    private const int Overlap = 4096;

    private readonly string _targetHost;
    private readonly int _targetPort;
    private readonly Lock _gate = new();
    private readonly HashSet<Socket> _sockets = [];
    private TcpListener? _listener;
    private Fault? _fault;
    private TaskCompletionSource _resumed = NewResumed(resumed: true);

    private TcpProxy(string targetHost, int targetPort)
    {
        _targetHost = targetHost;
        _targetPort = targetPort;
    }

    /// <summary>The loopback port clients connect to.</summary>
    public int Port { get; private set; }

    /// <summary>
    /// A proxy in front of the server <paramref name="connectionString"/> names, and a connection string that reaches the
    /// same database through it. Pooling is off there, so every unit of work opens its own connection through the proxy:
    /// no idle pooled connection hides an outage, and every statement is sent with its SQL text (nothing stays prepared).
    /// </summary>
    public static TcpProxy InFrontOf(string connectionString, out string proxiedConnectionString)
    {
        var builder = new Npgsql.NpgsqlConnectionStringBuilder(connectionString);
        string host = builder.Host ?? "localhost";
        if (host.StartsWith('/'))
        {
            throw new InvalidOperationException($"A proxy needs a TCP host to forward to, not the Unix socket '{host}'.");
        }

        var proxy = Start(host, builder.Port);
        builder.Host = "127.0.0.1";
        builder.Port = proxy.Port;
        builder.Pooling = false;
        builder.Timeout = 5;
        proxiedConnectionString = builder.ConnectionString;
        return proxy;
    }

    /// <summary>A matcher for <see cref="ArmFault"/>: the bytes hold every one of <paramref name="fragments"/> (as UTF-8).</summary>
    public static Func<ReadOnlyMemory<byte>, bool> Containing(params string[] fragments)
    {
        var encoded = fragments.Select(f => System.Text.Encoding.UTF8.GetBytes(f)).ToArray();
        return bytes => encoded.All(fragment => bytes.Span.IndexOf(fragment) >= 0);
    }

    /// <summary>A matcher for <see cref="ArmFault"/>: the bytes hold every one of <paramref name="fragments"/> and the uuid <paramref name="id"/> as PostgreSQL's binary format sends it.</summary>
    public static Func<ReadOnlyMemory<byte>, bool> Containing(Guid id, params string[] fragments)
    {
        var text = Containing(fragments);
        byte[] binary = id.ToByteArray(bigEndian: true);
        return bytes => text(bytes) && bytes.Span.IndexOf(binary) >= 0;
    }

    public static TcpProxy Start(string targetHost, int targetPort)
    {
        var proxy = new TcpProxy(targetHost, targetPort);
        proxy.SwitchOn();
        return proxy;
    }

    public void SwitchOn()
    {
        lock (_gate)
        {
            if (_listener is not null)
            {
                return;
            }

            var listener = new TcpListener(IPAddress.Loopback, Port);
            // The port must be free again at once after SwitchOff, whatever its old connections' TCP state.
            listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            listener.Start();
            Port = ((IPEndPoint)listener.LocalEndpoint).Port;
            _listener = listener;
            _ = AcceptUntilStoppedAsync(listener);
        }
    }

    public void SwitchOff()
    {
        Socket[] open;
        lock (_gate)
        {
            _listener?.Stop();
            _listener = null;
            open = [.. _sockets];
            _sockets.Clear();
        }

        foreach (var socket in open)
        {
            Abort(socket);
        }
    }

    /// <summary>Holds everything clients send (connection set-up included) until <see cref="Resume"/>.</summary>
    public void Pause()
    {
        lock (_gate)
        {
            if (_resumed.Task.IsCompleted)
            {
                _resumed = NewResumed(resumed: false);
            }
        }
    }

    public void Resume()
    {
        lock (_gate)
        {
            _resumed.TrySetResult();
        }
    }

    /// <summary>
    /// Breaks the first connection that sends bytes <paramref name="matches"/> recognises (once; the proxy is disarmed
    /// then). The returned task completes when the connection was broken. With <see cref="FaultMoment.BeforeTheServer"/>
    /// the bytes are not forwarded; with <see cref="FaultMoment.AfterTheCommit"/> they are, and the server's answer is read
    /// up to its ReadyForQuery (so the write and its implicit or explicit COMMIT are done) and dropped.
    /// <paramref name="onBroken"/> runs right after the break, before the client can try again (to switch the proxy
    /// off, say).
    /// </summary>
    public Task ArmFault(Func<ReadOnlyMemory<byte>, bool> matches, FaultMoment moment, Action? onBroken = null)
    {
        var fault = new Fault(matches, moment, onBroken);
        lock (_gate)
        {
            _fault = fault;
        }

        return fault.Broken.Task;
    }

    public void Dispose()
    {
        Resume();
        SwitchOff();
    }

    private async Task AcceptUntilStoppedAsync(TcpListener listener)
    {
        while (true)
        {
            Socket client;
            try
            {
                client = await listener.AcceptSocketAsync();
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or InvalidOperationException)
            {
                return; // SwitchOff stopped this listener.
            }

            _ = PipeAsync(listener, client);
        }
    }

    private async Task PipeAsync(TcpListener listener, Socket client)
    {
        var server = new Socket(SocketType.Stream, ProtocolType.Tcp);
        var connection = new Connection(client, server);
        try
        {
            if (!Track(listener, client) || !Track(listener, server))
            {
                return;
            }

            try
            {
                await server.ConnectAsync(_targetHost, _targetPort);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                return; // The target is down or the proxy was switched off meanwhile: the client sees its connection end.
            }

            await Task.WhenAll(ForwardRequestsAsync(connection), ForwardAnswersAsync(connection));
        }
        finally
        {
            lock (_gate)
            {
                _sockets.Remove(client);
                _sockets.Remove(server);
            }

            Abort(client);
            Abort(server);
        }
    }

    private bool Track(TcpListener listener, Socket socket)
    {
        lock (_gate)
        {
            // A connection accepted just before SwitchOff must not survive it.
            return _listener == listener && _sockets.Add(socket);
        }
    }

    /// <summary>Client to server: held while paused; the armed fault looks at every read (with the end of the one before).</summary>
    private async Task ForwardRequestsAsync(Connection connection)
    {
        var buffer = new byte[16 * 1024];
        var seen = new byte[Overlap + buffer.Length];
        int carried = 0;
        try
        {
            while (true)
            {
                int read = await connection.Client.ReceiveAsync(buffer, SocketFlags.None);
                if (read == 0)
                {
                    connection.Server.Shutdown(SocketShutdown.Send);
                    return;
                }

                Task resumed;
                lock (_gate)
                {
                    resumed = _resumed.Task;
                }

                await resumed;

                Array.Copy(buffer, 0, seen, carried, read);
                int total = carried + read;
                if (TakeFault(seen.AsMemory(0, total), seen.AsMemory(0, carried)) is { } fault)
                {
                    if (fault.Moment == FaultMoment.BeforeTheServer)
                    {
                        Break(connection, fault);
                        return;
                    }

                    connection.Fault = fault;
                }

                await connection.Server.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);

                carried = Math.Min(Overlap, total);
                Array.Copy(seen, total - carried, seen, 0, carried);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // One side went away (or the proxy aborted both): end the other side too.
            Abort(connection.Client);
            Abort(connection.Server);
        }
    }

    /// <summary>Server to client; after a fault's write was forwarded, its answer is read up to ReadyForQuery and dropped.</summary>
    private static async Task ForwardAnswersAsync(Connection connection)
    {
        var buffer = new byte[16 * 1024];
        var dropped = new List<byte>();
        try
        {
            while (true)
            {
                int read = await connection.Server.ReceiveAsync(buffer, SocketFlags.None);
                if (read == 0)
                {
                    connection.Client.Shutdown(SocketShutdown.Send);
                    return;
                }

                if (connection.Fault is { } fault)
                {
                    dropped.AddRange(buffer.AsSpan(0, read));
                    if (EndsWithReadyForQuery(dropped))
                    {
                        Break(connection, fault);
                        return;
                    }

                    continue;
                }

                await connection.Client.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            Abort(connection.Client);
            Abort(connection.Server);
        }
    }

    /// <summary>
    /// The armed fault, taken (once), if <paramref name="sent"/> matches it and the bytes forwarded before this read
    /// (<paramref name="alreadyForwarded"/>, its start) do not: the write must be in what was just read.
    /// </summary>
    private Fault? TakeFault(ReadOnlyMemory<byte> sent, ReadOnlyMemory<byte> alreadyForwarded)
    {
        lock (_gate)
        {
            if (_fault is { } fault && fault.Matches(sent) && !fault.Matches(alreadyForwarded))
            {
                _fault = null;
                return fault;
            }

            return null;
        }
    }

    private static void Break(Connection connection, Fault fault)
    {
        // Before the client sees its connection break, so it cannot reach the server again before the fault's action.
        fault.OnBroken?.Invoke();
        Abort(connection.Client);
        Abort(connection.Server);
        fault.Broken.TrySetResult();
    }

    /// <summary>ReadyForQuery ('Z', length 5, transaction status) ends every answer of the extended and simple protocols.</summary>
    private static bool EndsWithReadyForQuery(List<byte> answer) =>
        answer.Count >= 6 && answer[^6] == (byte)'Z' && answer[^5] == 0 && answer[^4] == 0 && answer[^3] == 0 && answer[^2] == 5
        && answer[^1] is (byte)'I' or (byte)'T' or (byte)'E';

    /// <summary>Closes with a reset, so the peer sees the connection break instead of a graceful end.</summary>
    private static void Abort(Socket socket) => socket.Close(0);

    private static TaskCompletionSource NewResumed(bool resumed)
    {
        var source = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (resumed)
        {
            source.SetResult();
        }

        return source;
    }

    private sealed class Connection(Socket client, Socket server)
    {
        public Socket Client { get; } = client;

        public Socket Server { get; } = server;

        public volatile Fault? Fault;
    }

    private sealed class Fault(Func<ReadOnlyMemory<byte>, bool> matches, FaultMoment moment, Action? onBroken)
    {
        public Func<ReadOnlyMemory<byte>, bool> Matches { get; } = matches;

        public FaultMoment Moment { get; } = moment;

        public Action? OnBroken { get; } = onBroken;

        public TaskCompletionSource Broken { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>When an armed <see cref="TcpProxy"/> breaks the connection that sends the write it waits for.</summary>
public enum FaultMoment
{
    /// <summary>The write never reaches the server: nothing is stored.</summary>
    BeforeTheServer,

    /// <summary>The server commits the write; its acknowledgement never reaches the client.</summary>
    AfterTheCommit,
}
