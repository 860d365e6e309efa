using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;
using PollingApi.Operations.Telemetry;
using PollingApi.Operations.Worker;

namespace PollingApi.Operations.Lifecycle;

/// <summary>
/// The node's one PostgreSQL listener. It LISTENs on the operations channels over a dedicated connection and fans
/// notifications out in-process: completions wake waiting requests, cancellation requests fire the local
/// handler's token, new work wakes the local worker, a retry or delete drops the cached copy of a finished
/// operation. It reconnects with backoff after a database restart, and then wakes every waiter, since
/// notifications sent while it was away are lost.
/// </summary>
internal sealed partial class OperationNotificationListener(
    [FromKeyedServices(OperationNotificationListener.DataSourceKey)] NpgsqlDataSource dataSource,
    OperationSignals signals,
    FinishedOperationCache finishedOperations,
    NodeIdentity node,
    KindSettingsRefresher kindSettings,
    DatabaseStartupGate startup,
    TimeProvider timeProvider,
    OperationMetrics metrics,
    ILogger<OperationNotificationListener> logger) : BackgroundService
{
    /// <summary>The key of the listener's own data source, whose connections keep themselves alive while they wait.</summary>
    public const string DataSourceKey = "PollingApi.Operations.Listener";

    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(5);

    private bool _listenedBefore;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Started with the host, after the exporters: the counters of rare events show (at 0) before their first event.
        metrics.ServeRareCountersFromTheStart();
        try
        {
            // A node that starts without its database says so once (the migration service), not once per reconnect here.
            await startup.WaitUntilOpenAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        var backoff = TimeSpan.Zero;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await ListenAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or IOException)
            {
                backoff = backoff == TimeSpan.Zero ? TimeSpan.FromMilliseconds(200) : TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
                LogDisconnected(ex, backoff);
                try
                {
                    await Task.Delay(backoff, timeProvider, stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private async Task ListenAsync(CancellationToken stoppingToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(stoppingToken).ConfigureAwait(false);
        try
        {
            await ListenOnAsync(connection, stoppingToken).ConfigureAwait(false);
        }
        finally
        {
            // Pooled connections are not reset on reuse: undo LISTEN before this one goes back to the pool.
            if (connection.State == System.Data.ConnectionState.Open)
            {
                await using var unlisten = new NpgsqlCommand("UNLISTEN *", connection);
                await unlisten.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    private async Task ListenOnAsync(NpgsqlConnection connection, CancellationToken stoppingToken)
    {
        connection.Notification += (_, notification) => Dispatch(notification.Channel, notification.Payload);
        await using (var listen = new NpgsqlCommand(
            $"LISTEN {OperationNotifier.DoneChannel}; LISTEN {OperationNotifier.CancelChannel}; LISTEN {OperationNotifier.PendingChannel}; " +
            $"LISTEN {OperationNotifier.ForgetChannel}; LISTEN {OperationNotifier.ChangedChannel}; LISTEN {KindSettingsStore.ChangedChannel}", connection))
        {
            await listen.ExecuteNonQueryAsync(stoppingToken).ConfigureAwait(false);
        }

        LogListening();
        if (_listenedBefore)
        {
            metrics.ListenerReconnected();
        }

        _listenedBefore = true;
        // Anything that happened while no one was listening: let waiters read again, and look for work.
        signals.MayHaveMissedChanges();
        kindSettings.RequestRefresh();
        finishedOperations.Start();
        try
        {
            await WaitForNotificationsAsync(connection, stoppingToken).ConfigureAwait(false);
        }
        finally
        {
            // Deletes and retries on other nodes are not heard from now on: cached copies cannot be trusted.
            finishedOperations.Stop();
        }
    }

    private static async Task WaitForNotificationsAsync(NpgsqlConnection connection, CancellationToken stoppingToken)
    {
        while (true)
        {
            // The data source's keepalive pings the server after a few quiet seconds inside the wait, and breaks a connection
            // whose ping goes unanswered (a server crash without a reset, a partition); the timeout and the query after it
            // do the same where the connection string turned that keepalive off.
            using var keepAlive = new NpgsqlCommand("SELECT 1", connection);
            bool notified = await connection.WaitAsync(TimeSpan.FromSeconds(30), stoppingToken).ConfigureAwait(false);
            if (!notified)
            {
                await keepAlive.ExecuteNonQueryAsync(stoppingToken).ConfigureAwait(false);
            }
        }
    }

    private void Dispatch(string channel, string payload)
    {
        if (channel == OperationNotifier.PendingChannel)
        {
            if (payload != node.Id)
            {
                signals.PendingElsewhere();
            }

            return;
        }

        if (channel == KindSettingsStore.ChangedChannel)
        {
            kindSettings.RequestRefresh();
            return;
        }

        foreach (var part in payload.Split(','))
        {
            if (!Guid.TryParse(part, out var id))
            {
                continue;
            }

            if (channel == OperationNotifier.DoneChannel)
            {
                signals.FinishedElsewhere(id);
            }
            else if (channel == OperationNotifier.CancelChannel)
            {
                signals.CancelRequestedElsewhere(id);
            }
            else if (channel == OperationNotifier.ForgetChannel)
            {
                signals.ForgottenElsewhere(id);
            }
            else if (channel == OperationNotifier.ChangedChannel)
            {
                signals.ChangedElsewhere(id);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Listening for operation notifications")]
    private partial void LogListening();

    [LoggerMessage(Level = LogLevel.Warning, Message = "Operation notification listener lost its connection; reconnecting in {Delay}")]
    private partial void LogDisconnected(Exception exception, TimeSpan delay);
}
