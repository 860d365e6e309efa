using System.Diagnostics.Metrics;

namespace PollingApi.Tests.Infrastructure;

/// <summary>
/// Counts the database commands Npgsql runs for one database, from Npgsql's own metrics (one measurement of
/// <c>db.client.operation.duration</c> per command). Only measurements whose tags name the database are counted,
/// so tests running in parallel against other databases do not disturb the count.
/// </summary>
public sealed class DatabaseCommandCounter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly string _database;
    private long _count;

    public DatabaseCommandCounter(string database)
    {
        _database = database;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "Npgsql" && instrument.Name == "db.client.operation.duration")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<double>(OnMeasurement);
        _listener.Start();
    }

    public long Count => Interlocked.Read(ref _count);

    private void OnMeasurement(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
    {
        foreach (var tag in tags)
        {
            if (tag.Value is string text && text.Contains(_database, StringComparison.Ordinal))
            {
                Interlocked.Increment(ref _count);
                return;
            }
        }
    }

    public void Dispose() => _listener.Dispose();
}
