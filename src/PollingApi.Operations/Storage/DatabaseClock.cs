using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace PollingApi.Operations.Storage;

/// <summary>
/// The engine's clock: this machine's, corrected by how far it is off the database server's. Every time the engine
/// writes or compares (leases, their rescue, retry backoff, scheduled starts, creation times) comes from it, so nodes
/// whose clocks disagree still agree on one time, the database's, to within a fraction of a round trip.
/// </summary>
/// <remarks>
/// Only the wall-clock time moves: timers and timestamps (durations) are the machine's own, which a clock step does not
/// disturb. Until <see cref="DatabaseClockSync"/> has measured the offset, it is zero.
/// </remarks>
internal sealed class DatabaseClock(TimeProvider? machine = null) : TimeProvider
{
    private readonly TaskCompletionSource _synchronised = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _offsetTicks;

    /// <summary>This machine's clock.</summary>
    public TimeProvider Machine { get; } = machine ?? System;

    /// <summary>How far the database's clock is ahead of this machine's (negative: behind).</summary>
    public TimeSpan Offset => TimeSpan.FromTicks(Volatile.Read(ref _offsetTicks));

    /// <summary>Whether the offset has been measured at least once.</summary>
    public bool IsSynchronised => _synchronised.Task.IsCompleted;

    /// <summary>Completes once the offset has been measured: what writes a time waits for at start-up.</summary>
    public Task WhenSynchronisedAsync(CancellationToken cancellationToken) => _synchronised.Task.WaitAsync(cancellationToken);

    public override DateTimeOffset GetUtcNow() => Machine.GetUtcNow() + Offset;

    public override TimeZoneInfo LocalTimeZone => Machine.LocalTimeZone;

    /// <summary>A clock for a host that brought its own time: nothing to measure, nothing to wait for.</summary>
    public static DatabaseClock Unused()
    {
        var clock = new DatabaseClock();
        clock.Set(TimeSpan.Zero);
        return clock;
    }

    internal void Set(TimeSpan offset)
    {
        Volatile.Write(ref _offsetTicks, offset.Ticks);
        _synchronised.TrySetResult();
    }
}

/// <summary>
/// Measures <see cref="DatabaseClock.Offset"/>: a few <c>clock_timestamp()</c> reads, the one with the shortest round
/// trip taken, with the server's time set against the middle of that round trip. Once a second until the first
/// measurement succeeds, then every <see cref="Interval"/>.
/// </summary>
internal sealed partial class DatabaseClockSync(NpgsqlDataSource dataSource, DatabaseClock clock, ILogger<DatabaseClockSync> logger)
    : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan WarnAbove = TimeSpan.FromSeconds(1);
    private const int Samples = 5;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        bool warned = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            var wait = Interval;
            try
            {
                var offset = await MeasureAsync(stoppingToken).ConfigureAwait(false);
                clock.Set(offset);
                bool off = offset.Duration() > WarnAbove;
                if (off && !warned)
                {
                    LogClockOff(offset.Duration().TotalSeconds, offset < TimeSpan.Zero ? "ahead of" : "behind");
                }

                warned = off;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
            {
                // The database is away: the last offset stays in effect, and the next try comes sooner.
                LogMeasureFailed(ex.Message);
                wait = clock.IsSynchronised ? Interval : RetryInterval;
            }

            try
            {
                await Task.Delay(wait, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>The database's clock minus this machine's, from the sample with the shortest round trip.</summary>
    public async Task<TimeSpan> MeasureAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("SELECT clock_timestamp()", connection);
        var best = (RoundTrip: TimeSpan.MaxValue, Offset: TimeSpan.Zero);
        for (int i = 0; i < Samples; i++)
        {
            var sent = clock.Machine.GetUtcNow();
            long started = TimeProvider.System.GetTimestamp();
            var server = (DateTime)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
            var roundTrip = TimeProvider.System.GetElapsedTime(started);
            if (roundTrip < best.RoundTrip)
            {
                var middle = sent + roundTrip / 2;
                best = (roundTrip, new DateTimeOffset(DateTime.SpecifyKind(server, DateTimeKind.Utc)) - middle);
            }
        }

        return best.Offset;
    }

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "This machine's clock is {Seconds:0.000} s {Direction} the database server's; the engine keeps the database's time (fix the clock: NTP)")]
    private partial void LogClockOff(double seconds, string direction);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Measuring the database's clock failed: {Reason}")]
    private partial void LogMeasureFailed(string reason);
}
