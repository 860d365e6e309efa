using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using PollingApi.Operations;
using PollingApi.Operations.Storage;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>
/// A node starts while its database is out of reach (the proxy in front of PostgreSQL refuses or swallows connections
/// before the host starts): it serves liveness, answers 503 to everything that needs the database, and becomes ready by
/// itself when the database comes; or, with <c>Operations:StartupDatabaseTimeout</c>, gives up with a clear error.
/// </summary>
public sealed class StartupOutageTests
{
    private const string MigrationCategory = "PollingApi.Operations.Storage.DatabaseMigrationService";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task ANodeStartedWithoutItsDatabaseIsLiveButNotReadyAndBecomesReadyWhenTheDatabaseComes()
    {
        await using var factory = new DatabaseAwayAtStartFactory(blackhole: false);
        await factory.InitializeAsync();
        using var client = factory.CreateClient();

        var live = await client.FetchAsync("/health/live");
        Assert.True(live.Status == HttpStatusCode.OK, live.ToString());
        var ready = await client.FetchAsync("/health/ready");
        Assert.True(ready.Status == HttpStatusCode.ServiceUnavailable, ready.ToString());

        var submit = await client.SubmitSleepAsync("""{"durationMs": 1}""");
        ProblemAssert.IsProblem(submit, HttpStatusCode.ServiceUnavailable, "urn:pollingapi:problem:database-unavailable", PollingApiClient.SleepRoute);
        Assert.True(RetryAfter.Seconds(submit) >= 1);
        var poll = await client.FetchAsync($"/v1/operations/{Guid.CreateVersion7()}");
        ProblemAssert.IsProblem(poll, HttpStatusCode.ServiceUnavailable, "urn:pollingapi:problem:database-unavailable", "/v1/operations/");
        Assert.False(await TableExistsAsync(factory, "operations"), "nothing can have been stored: the schema is not even there");

        // It keeps trying, one warning a try, the error's message without its stack trace.
        await Eventually.WaitUntilAsync(() => Task.FromResult(StartupWarnings(factory).Length >= 2), Deadline,
            () => string.Join(" | ", factory.Logs.Entries.Select(e => $"{e.Level} {e.Category}: {e.Message}")));
        foreach (var warning in StartupWarnings(factory))
        {
            Assert.Null(warning.Exception);
            Assert.Contains("cannot be reached at start-up", warning.Message, StringComparison.Ordinal);
            Assert.Contains("Failed to connect", warning.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", warning.Message, StringComparison.Ordinal);
        }

        // Nothing else logs a stack trace per try (the listener, the worker, the jobs wait for the migrations).
        var noisy = factory.Logs.Entries.Where(e => e.Level >= LogLevel.Warning && e.Exception is not null).ToArray();
        Assert.True(noisy.Length == 0, string.Join(Environment.NewLine, noisy.Select(e => $"{e.Level} {e.Category}: {e.Message} {e.Exception}")));

        factory.Proxy.SwitchOn();
        await Eventually.WaitUntilAsync(async () => (await client.FetchAsync("/health/ready")).Status == HttpStatusCode.OK, Deadline);

        // Each script was applied once, by this node's one migration run.
        var (scripts, distinct) = await CountMigrationsAsync(factory);
        Assert.True(scripts > 0);
        Assert.Equal(distinct, scripts);

        var accepted = await client.SubmitSleepAsync("""{"durationMs": 1}""");
        Assert.True(accepted.Status == HttpStatusCode.Accepted, accepted.ToString());
        var done = await client.PollUntilDoneAsync(accepted.Headers.Location!, Deadline);
        Assert.Equal("succeeded", done.Json.GetProperty("status").GetString());
        Assert.Equal(1, await factory.Operations.CountAsync());
    }

    [Fact]
    public async Task ANodeWhoseDatabaseNeverAnswersStopsWithAClearErrorOnceTheStartupTimeoutPasses()
    {
        int exitCodeBefore = Environment.ExitCode;
        try
        {
            await using var factory = new DatabaseAwayAtStartFactory(blackhole: true, startupTimeout: TimeSpan.FromSeconds(2));
            await factory.InitializeAsync();
            var lifetime = factory.Services.GetRequiredService<IHostApplicationLifetime>();
            var startup = factory.Services.GetRequiredService<DatabaseStartupGate>();

            await Eventually.WaitUntilAsync(() => Task.FromResult(lifetime.ApplicationStopping.IsCancellationRequested), Deadline);

            var gaveUp = Assert.Single(factory.Logs.Entries, e => e.Category == MigrationCategory && e.Level == LogLevel.Critical);
            Assert.Contains("within Operations:StartupDatabaseTimeout (00:00:02)", gaveUp.Message, StringComparison.Ordinal);
            Assert.Contains("exit code 1", gaveUp.Message, StringComparison.Ordinal);
            Assert.Contains("leave Operations:StartupDatabaseTimeout unset to wait for the database indefinitely", gaveUp.Message,
                StringComparison.Ordinal);
            Assert.Null(gaveUp.Exception);
            Assert.Equal(DatabaseMigrationService.FailureExitCode, Environment.ExitCode);
            Assert.False(startup.IsOpen);
        }
        finally
        {
            // Program returns it when the host stops; here the process is the test run.
            Environment.ExitCode = exitCodeBefore;
        }
    }

    [Theory]
    [InlineData("00:00:00")]
    [InlineData("-00:00:05")]
    public void AStartupDatabaseTimeoutThatIsNotPositiveIsRefusedNamingTheValue(string value)
    {
        var options = new OperationsOptions { StartupDatabaseTimeout = TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture) };

        var result = new OperationsOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        Assert.Equal(
            [$"Operations:StartupDatabaseTimeout must be positive, or not set (wait for the database indefinitely), not {value}."],
            result.Failures);
    }

    [Fact]
    public void ByDefaultANodeWaitsForItsDatabaseIndefinitely()
    {
        var defaults = new OperationsOptions();

        Assert.Null(defaults.StartupDatabaseTimeout);
        Assert.True(new OperationsOptionsValidator().Validate(null, defaults).Succeeded);
    }

    private static CapturedLog[] StartupWarnings(PollingApiFactory factory) =>
        [.. factory.Logs.Entries.Where(e => e.Category == MigrationCategory && e.Level == LogLevel.Warning)];

    private static async Task<bool> TableExistsAsync(PollingApiFactory factory, string table)
    {
        await using var connection = new NpgsqlConnection(factory.DatabaseConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT to_regclass(@table) IS NOT NULL", connection);
        command.Parameters.AddWithValue("table", table);
        return (bool)(await command.ExecuteScalarAsync())!;
    }

    private static async Task<(long Scripts, long Distinct)> CountMigrationsAsync(PollingApiFactory factory)
    {
        await using var connection = new NpgsqlConnection(factory.DatabaseConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT count(*), count(DISTINCT scriptname) FROM public.schema_migrations", connection);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    /// <summary>
    /// A proxied node whose database is away before its host starts: the proxy refuses connections, or with
    /// <c>blackhole</c> takes them and never answers. The factory does not wait for the migrations.
    /// </summary>
    private sealed class DatabaseAwayAtStartFactory(bool blackhole, TimeSpan? startupTimeout = null) : ProxiedPollingApiFactory
    {
        protected override async Task<string> CreateServerConnectionStringAsync(string databaseConnectionString)
        {
            string proxied = await base.CreateServerConnectionStringAsync(databaseConnectionString);
            if (blackhole)
            {
                Proxy.Pause();
            }
            else
            {
                Proxy.SwitchOff();
            }

            return proxied;
        }

        protected override IEnumerable<(string Key, string Value)> MoreSettings =>
            startupTimeout is { } timeout
                ? [("Operations:StartupDatabaseTimeout", timeout.ToString("c", System.Globalization.CultureInfo.InvariantCulture))]
                : [];

        protected override Task WaitUntilStartedAsync() => Task.CompletedTask;
    }
}
