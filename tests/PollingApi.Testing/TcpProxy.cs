using System.Net;
using System.Net.Sockets;

namespace PollingApi.Tests.Infrastructure;

/// <summary>
/// Forwards TCP connections from a loopback port to a target server. Switched off, it stops listening (new
/// connections are refused) and aborts every connection it carries, as an outage would; switched on again, it
/// listens on the same port.
/// </summary>
public sealed class TcpProxy : IDisposable
{
    private readonly string _targetHost;
    private readonly int _targetPort;
    private readonly Lock _gate = new();
    private readonly HashSet<Socket> _sockets = [];
    private TcpListener? _listener;

    private TcpProxy(string targetHost, int targetPort)
    {
        _targetHost = targetHost;
        _targetPort = targetPort;
    }

    /// <summary>The loopback port clients connect to.</summary>
    public int Port { get; private set; }

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

    public void Dispose() => SwitchOff();

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

            await Task.WhenAll(CopyAsync(client, server), CopyAsync(server, client));
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

    private static async Task CopyAsync(Socket from, Socket to)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                int read = await from.ReceiveAsync(buffer, SocketFlags.None);
                if (read == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // One side went away (or the proxy aborted both): end the other side too.
            Abort(from);
            Abort(to);
        }
    }

    /// <summary>Closes with a reset, so the peer sees the connection break instead of a graceful end.</summary>
    private static void Abort(Socket socket) => socket.Close(0);
}
