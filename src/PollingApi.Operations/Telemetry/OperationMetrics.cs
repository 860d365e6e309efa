using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace PollingApi.Operations.Telemetry;

/// <summary>
/// The engine's instruments (meter <see cref="OperationsTelemetry.MeterName"/>). Recording costs a check and nothing
/// more while no exporter listens. Gauges are observed from the parts that know their values (statistics, waiters,
/// the consistency check) through <see cref="Meter"/>.
/// </summary>
internal sealed class OperationMetrics
{
    private readonly Counter<long> _submitted;
    private readonly Counter<long> _completed;
    private readonly Counter<long> _attempts;
    private readonly Histogram<double> _attemptDuration;
    private readonly Histogram<double> _completionDuration;
    private readonly Counter<long> _leaseRescues;
    private readonly Counter<long> _listenerReconnects;
    private readonly Histogram<int> _groupCommitBatchSize;

    public OperationMetrics(IMeterFactory meterFactory)
    {
        Meter = meterFactory.Create(OperationsTelemetry.MeterName);
        _submitted = Meter.CreateCounter<long>("pollingapi.operations.submitted", "{operation}",
            "Operations stored by a submit (an idempotent replay stores nothing).");
        _completed = Meter.CreateCounter<long>("pollingapi.operations.completed", "{operation}",
            "Operations that reached a terminal status.");
        _attempts = Meter.CreateCounter<long>("pollingapi.operation.attempts", "{attempt}", "Attempts that ended, by outcome.");
        _attemptDuration = Meter.CreateHistogram<double>("pollingapi.operation.attempt.duration", "s",
            "How long one attempt ran, from its start on this node to its outcome.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        _completionDuration = Meter.CreateHistogram<double>("pollingapi.operation.completion.duration", "s",
            "How long an operation took from its submit to its terminal status.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        _leaseRescues = Meter.CreateCounter<long>("pollingapi.lease.rescues", "{operation}",
            "Operations whose worker stopped renewing the lease, returned to pending or ended failed.");
        _listenerReconnects = Meter.CreateCounter<long>("pollingapi.notification_listener.reconnects", "{reconnect}",
            "Times the node's LISTEN connection was established again after it was lost.");
        Meter.CreateObservableGauge("pollingapi.consistency.findings", ObserveFindings, "{finding}",
            "Findings of the last consistency check on this node, by check; check=\"all\" is their total (0 until a check has run).");

        _groupCommitBatchSize = Meter.CreateHistogram<int>("pollingapi.group_commit.batch_size", "{operation}",
            "Rows stored by one group-committed insert.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128, 256] });
    }

    /// <summary>Counters that count rare events are served (at 0) from the start: a rule's increase() sees the first event.</summary>
    public void ServeRareCountersFromTheStart()
    {
        _leaseRescues.Add(0, new KeyValuePair<string, object?>("outcome", "pending"));
        _leaseRescues.Add(0, new KeyValuePair<string, object?>("outcome", "failed"));
        _listenerReconnects.Add(0);
    }

    /// <summary>Seconds, from a millisecond to an hour.</summary>
    private static readonly double[] DurationBuckets =
        [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

    public Meter Meter { get; }

    public void Submitted(string kind) => _submitted.Add(1, new KeyValuePair<string, object?>("kind", kind));

    /// <summary>An attempt ended; <paramref name="startedTimestamp"/> is when it started (<see cref="Stopwatch.GetTimestamp()"/>).</summary>
    public void AttemptEnded(string kind, string outcome, long startedTimestamp)
    {
        var tags = new TagList { { "kind", kind }, { "outcome", outcome } };
        _attempts.Add(1, tags);
        if (startedTimestamp != 0 && _attemptDuration.Enabled)
        {
            _attemptDuration.Record(Stopwatch.GetElapsedTime(startedTimestamp).TotalSeconds, tags);
        }
    }

    /// <summary>An operation reached <paramref name="status"/>; <paramref name="submitted"/> is when it was stored.</summary>
    public void Completed(string kind, string status, DateTime submitted, DateTime now)
    {
        var tags = new TagList { { "kind", kind }, { "status", status } };
        _completed.Add(1, tags);
        if (_completionDuration.Enabled)
        {
            _completionDuration.Record(Math.Max(0, (now - submitted).TotalSeconds), tags);
        }
    }

    private Dictionary<string, int> _lastFindings = [];

    /// <summary>What the last consistency check on this node found, per check (see <c>ConsistencyChecker</c>).</summary>
    public void ConsistencyChecked(Dictionary<string, int> findingsByCheck) => Volatile.Write(ref _lastFindings, findingsByCheck);

    /// <summary>The checks of the last run, for the next one to report those that found nothing this time as 0.</summary>
    public IEnumerable<string> ChecksWithFindings => Volatile.Read(ref _lastFindings).Keys;

    private IEnumerable<Measurement<int>> ObserveFindings()
    {
        var last = Volatile.Read(ref _lastFindings);
        yield return new Measurement<int>(last.Values.Sum(), new KeyValuePair<string, object?>("check", "all"));
        foreach (var (check, count) in last)
        {
            yield return new Measurement<int>(count, new KeyValuePair<string, object?>("check", check));
        }
    }

    public void LeaseRescued(string outcome) => _leaseRescues.Add(1, new KeyValuePair<string, object?>("outcome", outcome));

    public void ListenerReconnected() => _listenerReconnects.Add(1);

    public void GroupCommitted(int rows) => _groupCommitBatchSize.Record(rows);
}
