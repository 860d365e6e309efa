using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace PollingApi.Operations.Storage;

/// <summary>
/// Applies the migrations when the node starts, in the background, then opens the <see cref="DatabaseStartupGate"/>.
/// The host does not wait for it: Kestrel serves <c>/health/live</c> at once, and a database that cannot be reached yet is
/// tried again with capped exponential backoff (one warning per try, no stack trace) until it answers, so a node started
/// during an outage becomes ready by itself when the database is back. <see cref="OperationsOptions.StartupDatabaseTimeout"/>
/// bounds the wait; past it, or when a migration itself fails, the node says why and stops with exit code 1.
/// </summary>
internal sealed partial class DatabaseMigrationService(
    DatabaseMigrator migrator,
    DatabaseStartupGate gate,
    IOptions<OperationsOptions> options,
    IHostApplicationLifetime lifetime,
    TimeProvider timeProvider,
    ILogger<DatabaseMigrationService> logger) : BackgroundService
{
    /// <summary>The process's exit code when the node gave up at start-up.</summary>
    public const int FailureExitCode = 1;

    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var timeout = options.Value.StartupDatabaseTimeout;
        using var deadline = timeout is { } limit ? new CancellationTokenSource(limit, timeProvider) : new CancellationTokenSource();
        using var attemptToken = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, deadline.Token);
        long startedAt = timeProvider.GetTimestamp();
        var retryCap = TimeSpan.Zero;
        string lastError = "no answer yet (the first attempt was still waiting for the database)";
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await migrator.MigrateAsync(attemptToken.Token).ConfigureAwait(false);
                gate.Open();
                if (attempt > 1)
                {
                    var elapsed = timeProvider.GetElapsedTime(startedAt);
                    LogReached(attempt, elapsed);
                }

                return;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (deadline.IsCancellationRequested && (ex is OperationCanceledException || DatabaseFailure.IsUnavailable(ex)))
            {
                GiveUp(timeout!.Value, DatabaseFailure.IsUnavailable(ex) ? Describe(ex) : lastError);
                return;
            }
            catch (Exception ex) when (DatabaseFailure.IsUnavailable(ex))
            {
                retryCap = retryCap == TimeSpan.Zero ? FirstRetryDelay : TimeSpan.FromTicks(Math.Min(retryCap.Ticks * 2, MaxRetryDelay.Ticks));
                // Equal jitter: nodes restarted together do not all knock at the same moment.
                var delay = retryCap / 2 + retryCap / 2 * Random.Shared.NextDouble();
                lastError = Describe(ex);
                LogUnreachable(attempt, lastError, delay.TotalSeconds);
                LogUnreachableDetail(attempt, ex);
                try
                {
                    await Task.Delay(delay, timeProvider, attemptToken.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                {
                    return;
                }
                catch (OperationCanceledException)
                {
                    GiveUp(timeout!.Value, lastError);
                    return;
                }
            }
            catch (Exception ex)
            {
                // Not an outage (a script that fails, a refused login, a database that does not exist): trying again will not help.
                LogMigrationFailed(ex);
                Stop();
                return;
            }
        }
    }

    private void GiveUp(TimeSpan timeout, string lastError)
    {
        LogGaveUp(timeout, lastError);
        Stop();
    }

    private void Stop()
    {
        // The host stops normally (and Program returns this code): a supervisor sees a failed start, not a clean exit.
        Environment.ExitCode = FailureExitCode;
        lifetime.StopApplication();
    }

    /// <summary>The messages of the exception and its causes ("Failed to connect to 10.0.0.5:5432: Connection refused"), without stack traces.</summary>
    private static string Describe(Exception exception)
    {
        var messages = new List<string>();
        for (var current = exception; current is not null && messages.Count < 4; current = current.InnerException)
        {
            string message = current.Message.Trim().TrimEnd('.');
            if (message.Length > 0 && !messages.Contains(message, StringComparer.Ordinal))
            {
                messages.Add(message);
            }
        }

        return string.Join(": ", messages);
    }

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "The operations database cannot be reached at start-up (attempt {Attempt}): {Error}. Trying again in {DelaySeconds:0.0} s; " +
                  "meanwhile the node is live but not ready, and requests that need the database are answered 503")]
    private partial void LogUnreachable(int attempt, string error, double delaySeconds);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Start-up attempt {Attempt} to reach and migrate the operations database failed")]
    private partial void LogUnreachableDetail(int attempt, Exception exception);

    [LoggerMessage(Level = LogLevel.Information, Message = "Reached and migrated the operations database at attempt {Attempt}, after {Elapsed}; the node is ready")]
    private partial void LogReached(int attempt, TimeSpan elapsed);

    [LoggerMessage(Level = LogLevel.Critical,
        Message = "The operations database could not be reached and migrated within Operations:StartupDatabaseTimeout ({Timeout}); last error: {Error}. " +
                  "The node stops with exit code 1. Check ConnectionStrings:Operations and that PostgreSQL is running, " +
                  "or leave Operations:StartupDatabaseTimeout unset to wait for the database indefinitely")]
    private partial void LogGaveUp(TimeSpan timeout, string error);

    [LoggerMessage(Level = LogLevel.Critical, Message = "Applying the database migrations failed; the node stops with exit code 1")]
    private partial void LogMigrationFailed(Exception exception);
}
