using System.Net;
using System.Net.Sockets;

namespace PollingApi.FaultTests.Infrastructure;

/// <summary>What a <see cref="LinkProxy"/> does to the connections it carries.</summary>
internal enum LinkMode
{
    /// <summary>Forwards everything as it comes.</summary>
    Pass,

    /// <summary>Holds every chunk, in either direction, for a while before forwarding it.</summary>
    Latency,

    /// <summary>Every connection is reset, and new ones are refused (nothing listens).</summary>
    Drop,

    /// <summary>
    /// Accepts connections but forwards nothing and answers nothing; connections already open stall without being closed.
    /// A network partition as a client sees it: no error, no answer.
    /// </summary>
    Blackhole,
}

/// <summary>
/// A TCP proxy on 127.0.0.1 between one node and PostgreSQL that can break the link the way a network does: add latency
/// to every chunk, drop every connection, or blackhole them. Back in <see cref="LinkMode.Pass"/>, a blackholed
/// connection carries on where it stalled, what it held delivered in order (as TCP delivers it once a partition heals,
/// also for a socket the client has given up on and closed meanwhile), and a dropped proxy listens again on the same port.
/// </summary>
internal sealed class LinkProxy : IAsyncDisposable
{
    private const int ChunkSize = 16 * 1024;

    private readonly string _targetHost;
    private readonly int _targetPort;
    private readonly Lock _gate = new();
    private readonly HashSet<Socket> _sockets = [];
    private readonly CancellationTokenSource _disposed = new();
    private TcpListener? _listener;
    private TaskCompletionSource _flowing = Completed();
    private long _latencyTicks;
    private long _accepted;
    private long _acceptedWhileBlackholed;
    private long _reset;
    private long _chunksForwarded;

    private LinkProxy(string targetHost, int targetPort)
    {
        _targetHost = targetHost;
        _targetPort = targetPort;
    }

    /// <summary>The loopback port the node connects to.</summary>
    public int Port { get; private set; }

    public LinkMode Mode { get; private set; } = LinkMode.Pass;

    /// <summary>Connections accepted so far.</summary>
    public long Accepted => Interlocked.Read(ref _accepted);

    /// <summary>Connections accepted while blackholed: each waited, unanswered, for the link to heal.</summary>
    public long AcceptedWhileBlackholed => Interlocked.Read(ref _acceptedWhileBlackholed);

    /// <summary>Connections reset by a drop.</summary>
    public long Reset => Interlocked.Read(ref _reset);

    public long ChunksForwarded => Interlocked.Read(ref _chunksForwarded);

    /// <summary>Starts a proxy in front of <paramref name="targetHost"/>:<paramref name="targetPort"/>, passing everything.</summary>
    public static LinkProxy Start(string targetHost, int targetPort)
    {
        var proxy = new LinkProxy(targetHost, targetPort);
        proxy.Listen();
        return proxy;
    }

    /// <summary>Back to forwarding everything at once: a stalled connection resumes, a dropped proxy listens again.</summary>
    public void Pass() => Switch(LinkMode.Pass, TimeSpan.Zero);

    /// <summary>Holds each chunk <paramref name="perChunk"/> before forwarding it, in both directions.</summary>
    public void AddLatency(TimeSpan perChunk) => Switch(LinkMode.Latency, perChunk);

    /// <summary>Resets every connection and stops listening, so new connections are refused.</summary>
    public void Drop() => Switch(LinkMode.Drop, TimeSpan.Zero);

    /// <summary>Stops forwarding, without closing anything; new connections are accepted and never answered.</summary>
    public void Blackhole() => Switch(LinkMode.Blackhole, TimeSpan.Zero);

    public async ValueTask DisposeAsync()
    {
        await _disposed.CancelAsync();
        Socket[] open;
        lock (_gate)
        {
            _listener?.Stop();
            _listener = null;
            _flowing.TrySetResult();
            open = [.. _sockets];
            _sockets.Clear();
        }

        foreach (var socket in open)
        {
            Abort(socket);
        }

        _disposed.Dispose();
    }

    private void Switch(LinkMode mode, TimeSpan latency)
    {
        Socket[] toReset = [];
        lock (_gate)
        {
            Interlocked.Exchange(ref _latencyTicks, latency.Ticks);
            if (mode == LinkMode.Blackhole)
            {
                if (_flowing.Task.IsCompleted)
                {
                    _flowing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                }
            }
            else
            {
                _flowing.TrySetResult();
            }

            if (mode == LinkMode.Drop)
            {
                _listener?.Stop();
                _listener = null;
                toReset = [.. _sockets];
                _sockets.Clear();
            }

            Mode = mode;
        }

        foreach (var socket in toReset)
        {
            Abort(socket);
        }

        Interlocked.Add(ref _reset, toReset.Length / 2);
        if (mode != LinkMode.Drop)
        {
            Listen();
        }
    }

    private void Listen()
    {
        lock (_gate)
        {
            if (_listener is not null)
            {
                return;
            }

            var listener = new TcpListener(IPAddress.Loopback, Port);
            // The same port again at once after a drop, whatever state its old connections are in.
            listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            listener.Start();
            Port = ((IPEndPoint)listener.LocalEndpoint).Port;
            _listener = listener;
            _ = AcceptUntilStoppedAsync(listener);
        }
    }

    private async Task AcceptUntilStoppedAsync(TcpListener listener)
    {
        while (true)
        {
            Socket client;
            try
            {
                client = await listener.AcceptSocketAsync(_disposed.Token);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or InvalidOperationException or OperationCanceledException)
            {
                return; // A drop (or the end of the scenario) stopped this listener.
            }

            Interlocked.Increment(ref _accepted);
            _ = CarryAsync(listener, client);
        }
    }

    /// <summary>One connection: held (accepted, unanswered) while blackholed, then connected through and forwarded both ways.</summary>
    private async Task CarryAsync(TcpListener listener, Socket client)
    {
        using var server = new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (!Track(listener, client) || !Track(listener, server))
            {
                return;
            }

            var flowing = FlowingTask();
            if (!flowing.IsCompleted)
            {
                Interlocked.Increment(ref _acceptedWhileBlackholed);
                await flowing;
            }

            try
            {
                await server.ConnectAsync(_targetHost, _targetPort, _disposed.Token);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return; // Dropped meanwhile, or PostgreSQL is not there: the client sees its connection end.
            }

            await Task.WhenAll(ForwardAsync(client, server), ForwardAsync(server, client));
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

    /// <summary>
    /// One direction. A chunk read is held while blackholed and for the latency, then sent; an orderly end is passed on as
    /// one, a broken side breaks the other.
    /// </summary>
    private async Task ForwardAsync(Socket from, Socket to)
    {
        var buffer = new byte[ChunkSize];
        try
        {
            while (true)
            {
                int read = await from.ReceiveAsync(buffer, SocketFlags.None);
                if (read == 0)
                {
                    // What was held before the end is sent first, then the end itself.
                    await FlowingTask();
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                await FlowingTask();
                long latency = Interlocked.Read(ref _latencyTicks);
                if (latency > 0)
                {
                    await Task.Delay(TimeSpan.FromTicks(latency), _disposed.Token);
                }

                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
                Interlocked.Increment(ref _chunksForwarded);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
        {
            Abort(from);
            Abort(to);
        }
    }

    private Task FlowingTask()
    {
        lock (_gate)
        {
            return _flowing.Task;
        }
    }

    private bool Track(TcpListener listener, Socket socket)
    {
        lock (_gate)
        {
            // A connection accepted just before a drop must not survive it.
            return _listener == listener && _sockets.Add(socket);
        }
    }

    /// <summary>Closes with a reset, so the peer sees the connection break rather than end.</summary>
    private static void Abort(Socket socket)
    {
        try
        {
            socket.Close(0);
        }
        catch (ObjectDisposedException)
        {
            // Closed already.
        }
    }

    private static TaskCompletionSource Completed()
    {
        var source = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        source.SetResult();
        return source;
    }
}
