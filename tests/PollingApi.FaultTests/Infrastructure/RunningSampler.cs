using System.Collections.Concurrent;
using Npgsql;

namespace PollingApi.FaultTests.Infrastructure;

/// <summary>
/// Samples how many operations each node holds as <c>running</c> while a scenario runs: a node never holds more
/// than its MaxConcurrency (a claim takes only free slots, and a lease lost to rescue is not claimed twice).
/// </summary>
/// <remarks>
/// A node restarted under the same id shares its <c>locked_by</c> with the rows its previous process left running until
/// lease rescue returns them. Given when each node's current process started, the sampler counts only the rows that
/// process claimed: the limit is per process.
/// </remarks>
internal sealed class RunningSampler : IAsyncDisposable
{
    /// <summary>Operations:MaxConcurrency, which the harness leaves at its default.</summary>
    public const int MaxConcurrency = 32;

    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(250);

    private readonly ScenarioDatabase _database;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, long> _max = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _maxRows = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<string> _overruns = new();
    private readonly Task _sampling;

    private readonly Func<string, DateTimeOffset?>? _currentProcessStartedAt;

    /// <param name="database">The scenario's database.</param>
    /// <param name="currentProcessStartedAt">When the process now running under a node id started (null when unknown); without
    /// it, every running row of a node id counts.</param>
    public RunningSampler(ScenarioDatabase database, Func<string, DateTimeOffset?>? currentProcessStartedAt = null)
    {
        _database = database;
        _currentProcessStartedAt = currentProcessStartedAt;
        _sampling = Task.Run(SampleAsync);
    }

    /// <summary>The most operations any one node held at once.</summary>
    public long MaxObserved => _max.Values.DefaultIfEmpty(0).Max();

    public int Samples { get; private set; }

    /// <summary>Stops sampling and reports every node seen above MaxConcurrency.</summary>
    public async Task StopAsync(ScenarioReport report)
    {
        await _stop.CancelAsync();
        await _sampling;
        foreach (string overrun in _overruns)
        {
            report.Violation("running-per-node-within-max-concurrency", overrun);
        }

        report.Summary["maxRunningPerNode"] = MaxObserved;
        report.Summary["maxRunningRowsPerNodeId"] = _maxRows.Values.DefaultIfEmpty(0).Max();
    }

    private async Task SampleAsync()
    {
        var stop = _stop.Token;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                foreach (var node in (await _database.ReadRunningAsync(stop)).GroupBy(r => r.Node, StringComparer.Ordinal))
                {
                    var since = _currentProcessStartedAt?.Invoke(node.Key)?.UtcDateTime;
                    int previousProcess = node.Count(r => r.StartedAt < since);
                    int expired = node.Count(r => !(r.StartedAt < since) && r.Expired);
                    long count = node.Count() - previousProcess - expired;
                    long rows = node.Count();
                    _max.AddOrUpdate(node.Key, count, (_, max) => Math.Max(max, count));
                    _maxRows.AddOrUpdate(node.Key, rows, (_, max) => Math.Max(max, rows));
                    if (count > MaxConcurrency)
                    {
                        _overruns.Enqueue($"{node.Key} held {count} running operations at once (MaxConcurrency {MaxConcurrency}); " +
                                          $"besides those, {expired} whose lease had expired and {previousProcess} of its previous process");
                    }
                }

                Samples++;
                await Task.Delay(Interval, stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (NpgsqlException)
            {
                // The database is away (the outage scenario): nothing to sample until it is back.
                await Task.Delay(Interval, stop).ContinueWith(static _ => { }, CancellationToken.None,
                    TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync();
        }

        await _sampling.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        _stop.Dispose();
    }
}
