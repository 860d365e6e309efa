using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;

namespace PollingApi.Tests.Infrastructure;

/// <summary>
/// What one API host's meters record, from now on: a <see cref="MeterListener"/> that takes only the instruments of
/// meters made by that host's <see cref="IMeterFactory"/>, so the hosts of other test classes running meanwhile do not count.
/// </summary>
public sealed class RecordedMetrics : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentQueue<Recorded> _recorded = new();

    public RecordedMetrics(IServiceProvider services)
    {
        var factory = services.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, factory) && instrument.Name.StartsWith("pollingapi.", StringComparison.Ordinal))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Add(instrument, value, tags));
        _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => Add(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Add(instrument, value, tags));
        _listener.Start();
    }

    private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var tag in tags)
        {
            labels[tag.Key] = tag.Value?.ToString() ?? "";
        }

        _recorded.Enqueue(new Recorded(instrument.Name, value, labels));
    }

    /// <summary>The sum of what <paramref name="instrument"/> recorded with at least these labels.</summary>
    public double Sum(string instrument, params (string Name, string Value)[] labels) =>
        Matching(instrument, labels).Sum(r => r.Value);

    /// <summary>How many measurements <paramref name="instrument"/> recorded with at least these labels.</summary>
    public int Count(string instrument, params (string Name, string Value)[] labels) => Matching(instrument, labels).Count();

    /// <summary>The current values of observable instruments (gauges), read now.</summary>
    public void Observe() => _listener.RecordObservableInstruments();

    /// <summary>The last value each label set of a gauge reported, after <see cref="Observe"/>.</summary>
    public double Last(string instrument, params (string Name, string Value)[] labels) =>
        Matching(instrument, labels).LastOrDefault()?.Value ?? double.NaN;

    private IEnumerable<Recorded> Matching(string instrument, (string Name, string Value)[] labels) =>
        _recorded.Where(r => r.Instrument == instrument && labels.All(l => r.Labels.TryGetValue(l.Name, out var v) && v == l.Value));

    public void Dispose() => _listener.Dispose();

    private sealed record Recorded(string Instrument, double Value, Dictionary<string, string> Labels);
}
