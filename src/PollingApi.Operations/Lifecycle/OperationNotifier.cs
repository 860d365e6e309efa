using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Lifecycle;

/// <summary>
/// Tells the other nodes what happened here, through PostgreSQL <c>NOTIFY</c>, after the change is committed.
/// Notifications are coalesced: whatever accumulated while the last batch was being sent goes out in one
/// statement (ids joined by commas, up to the payload limit), so a busy node sends a few notifications per
/// second, not one per operation, and the data transactions never hold NOTIFY's commit lock.
/// </summary>
/// <remarks>
/// A notification is a hint, never the only path: if one is lost (the database is away, the node crashes right
/// after a commit), waiting requests still answer at their deadline, workers still poll every
/// <see cref="OperationsOptions.PollInterval"/>, and lease renewal still carries cancellation requests.
/// </remarks>
internal sealed partial class OperationNotifier(NpgsqlDataSource dataSource, NodeIdentity node, ILogger<OperationNotifier> logger)
    : BackgroundService
{
    public const string DoneChannel = "pollingapi_operation_done";
    public const string CancelChannel = "pollingapi_operation_cancel";
    public const string PendingChannel = "pollingapi_operation_pending";
    public const string ChangedChannel = "pollingapi_operation_changed";
    // Sent by OperationStore's retry and delete statements themselves, in their transaction.
    public const string ForgetChannel = OperationStore.ForgetChannel;

    // NOTIFY payloads are limited to 8000 bytes; a UUID and a comma take 37.
    private const int IdsPerPayload = 200;

    private readonly Channel<(string Channel, Guid Id)> _queue = Channel.CreateUnbounded<(string, Guid)>(
        new UnboundedChannelOptions { SingleReader = true });

    /// <summary>An operation reached a terminal status: wake its waiters on every node.</summary>
    public void Done(Guid id) => _queue.Writer.TryWrite((DoneChannel, id));

    /// <summary>Cancellation of a running operation was requested: fire its handler's token on the node that runs it.</summary>
    public void CancelRequested(Guid id) => _queue.Writer.TryWrite((CancelChannel, id));

    /// <summary>An operation changed without finishing (claimed, progress, back to pending): wake the event streams that follow it.</summary>
    public void Changed(Guid id) => _queue.Writer.TryWrite((ChangedChannel, id));

    /// <summary>New work is due: wake the workers of every node.</summary>
    public void Pending() => _queue.Writer.TryWrite((PendingChannel, Guid.Empty));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<(string Channel, Guid Id)>();
        while (await _queue.Reader.WaitToReadAsync(stoppingToken).ConfigureAwait(false))
        {
            batch.Clear();
            while (batch.Count < 10_000 && _queue.Reader.TryRead(out var item))
            {
                batch.Add(item);
            }

            try
            {
                await SendAsync(batch, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
            {
                // Dropped: see the remarks; every notification has a slower path behind it.
                LogSendFailed(ex, batch.Count);
            }
        }
    }

    private async Task SendAsync(List<(string Channel, Guid Id)> batch, CancellationToken cancellationToken)
    {
        var channels = new List<string>();
        var payloads = new List<string>();
        foreach (var group in batch.GroupBy(item => item.Channel, StringComparer.Ordinal))
        {
            if (group.Key == PendingChannel)
            {
                // Signed with the node's id: the node woke its own worker in-process already and ignores its echo.
                channels.Add(PendingChannel);
                payloads.Add(node.Id);
                continue;
            }

            foreach (var chunk in group.Select(item => item.Id).Distinct().Chunk(IdsPerPayload))
            {
                channels.Add(group.Key);
                payloads.Add(string.Join(',', chunk));
            }
        }

        await using var command = dataSource.CreateCommand("SELECT pg_notify(c, p) FROM unnest(@channels, @payloads) AS t(c, p)");
        command.Parameters.AddWithValue("channels", channels.ToArray());
        command.Parameters.AddWithValue("payloads", payloads.ToArray());
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sending {Count} operation notifications failed; they are dropped")]
    private partial void LogSendFailed(Exception exception, int count);
}
