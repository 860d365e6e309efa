using System.Diagnostics;
using System.Globalization;
using System.Net;
using PollingApi.Harness;

namespace PollingApi.Benchmarks.Infrastructure;

/// <summary>
/// The Hangfire peer (<c>../shared/peers/hangfire-api</c>, same HTTP contract) as its README runs it: its Release build on
/// a free loopback port, against its own database in the benchmark's cluster (<c>PEER_DB</c>), its own tuning left as
/// the README describes. It is ready when an unknown operation answers 404.
/// </summary>
internal sealed class PeerProcess : IAsyncDisposable
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(120);

    private readonly LoopbackApiProcess _process;

    private PeerProcess(LoopbackApiProcess process) => _process = process;

    public Uri BaseAddress => _process.BaseAddress;

    public int Pid => _process.Pid;

    public bool HasExited => _process.HasExited;

    public static async Task<PeerProcess> StartAsync(string peerDll, string connectionString, string logPath, HttpClient http,
        CancellationToken cancellationToken)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal) { ["PEER_DB"] = connectionString };
        var peer = new PeerProcess(LoopbackApiProcess.Start(LoopbackApiProcess.DotnetHost, peerDll, connectionString, environment,
            logPath + ".stdout", logPath + ".stderr"));
        try
        {
            var probe = new Uri(peer.BaseAddress, "v1/operations/0");
            var started = Stopwatch.StartNew();
            string last = "no answer yet";
            while (started.Elapsed < ReadyTimeout)
            {
                if (peer.HasExited)
                {
                    throw new InvalidOperationException($"The Hangfire peer exited before it was ready:{Environment.NewLine}{peer._process.Tail(30)}");
                }

                try
                {
                    using var response = await http.GetAsync(probe, cancellationToken);
                    if (response.StatusCode == HttpStatusCode.NotFound)
                    {
                        return peer;
                    }

                    last = $"HTTP {((int)response.StatusCode).ToString(CultureInfo.InvariantCulture)}";
                }
                catch (HttpRequestException ex)
                {
                    last = ex.Message;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken);
            }

            throw new TimeoutException($"The Hangfire peer was not ready within {ReadyTimeout.TotalSeconds:0} s (last: {last}):" +
                                       $"{Environment.NewLine}{peer._process.Tail(30)}");
        }
        catch
        {
            await peer.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            await _process.SendTerminateAsync(CancellationToken.None);
            if (!await _process.WaitForExitAsync(TimeSpan.FromSeconds(20), CancellationToken.None))
            {
                _process.Kill();
            }
        }

        await _process.DisposeAsync();
    }
}
