using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Tests;

/// <summary>The engine's clock is the database's: a node whose own clock is wrong by a minute still tells the database's time.</summary>
public sealed class DatabaseClockTests
{
    [Theory]
    [InlineData(60)]
    [InlineData(-60)]
    [InlineData(0)]
    public async Task ANodeWhoseClockIsOffByAMinuteTellsTheDatabasesTimeOnceMeasured(int secondsOff)
    {
        string database = await PostgresServer.CreateDatabaseAsync();
        await using var dataSource = NpgsqlDataSource.Create(database);
        // This machine's clock, secondsOff away from the real time (which the database server keeps here), and running: a
        // frozen one would count the time the measurement takes as offset.
        var clock = new DatabaseClock(new ShiftedClock(TimeSpan.FromSeconds(secondsOff)));
        var sync = new DatabaseClockSync(dataSource, clock, NullLogger<DatabaseClockSync>.Instance);

        Assert.False(clock.IsSynchronised);
        clock.Set(await sync.MeasureAsync(CancellationToken.None));

        Assert.True(clock.IsSynchronised);
        Assert.Equal(-secondsOff, clock.Offset.TotalSeconds, 0.5);
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var now = new NpgsqlCommand("SELECT clock_timestamp()", connection);
        var server = (DateTime)(await now.ExecuteScalarAsync())!;
        Assert.Equal(server, clock.GetUtcNow().UtcDateTime, TimeSpan.FromSeconds(0.5));
    }

    [Fact]
    public async Task ClaimsWaitForTheClockToBeMeasured()
    {
        var clock = new DatabaseClock();
        var waiting = clock.WhenSynchronisedAsync(CancellationToken.None);

        Assert.False(waiting.IsCompleted);
        clock.Set(TimeSpan.FromSeconds(-3));
        await waiting.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(TimeSpan.FromSeconds(-3), clock.Offset);
    }

    /// <summary>The system's clock, shifted: a machine whose clock is wrong by a fixed amount.</summary>
    private sealed class ShiftedClock(TimeSpan shift) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + shift;
    }
}
