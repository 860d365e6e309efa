using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using PollingApi.Operations.Handlers;
using PollingApi.Operations.Storage;
using PollingApi.Operations.Telemetry;

namespace PollingApi.Operations.Worker;

/// <summary>
/// Runs one attempt of an operation: opens the engine's transaction for a transactional command, calls the handler in
/// a scope of its own (with the operation's id in the log scope), and hands what happened to
/// <see cref="AttemptOutcomes"/>.
/// </summary>
internal sealed partial class AttemptRunner(
    CommandRegistry commands,
    NpgsqlDataSource dataSource,
    IServiceScopeFactory scopeFactory,
    AttemptOutcomes outcomes,
    KindSettingsCache kindSettings,
    RunningHandlers running,
    LeaseKeeper leases,
    WorkerContext workerContext,
    ILogger<AttemptRunner> logger)
{
    private static readonly ActivitySource Source = new(OperationsTelemetry.ActivitySourceName);

    /// <param name="operation">The claimed operation.</param>
    /// <param name="handlerToken">Fires when cancellation is requested, or at the end of a shutdown's drain.</param>
    /// <param name="shutdownToken">Fires at the end of a shutdown's drain only.</param>
    public async Task RunAsync(ClaimedOperation operation, CancellationToken handlerToken, CancellationToken shutdownToken)
    {
        operation.StartedTimestamp = Stopwatch.GetTimestamp();
        // The attempt continues the trace of the request that submitted the operation, across the wait in the queue.
        using var activity = Source.StartActivity($"process {operation.Kind}", ActivityKind.Consumer,
            ActivityContext.TryParse(operation.TraceParent, null, out var submitted) ? submitted : default);
        activity?.SetTag("pollingapi.operation.id", operation.Id);
        activity?.SetTag("pollingapi.operation.kind", operation.Kind);
        activity?.SetTag("pollingapi.operation.attempt", operation.Attempts);
        using var scope = logger.BeginScope(new Dictionary<string, object?>
        {
            ["OperationId"] = operation.Id,
            ["OperationKind"] = operation.Kind,
            ["Attempt"] = operation.Attempts,
            // The submitting request's trace, whether or not a span is recorded for the attempt.
            ["TraceId"] = activity?.TraceId.ToString() ?? (submitted == default ? null : submitted.TraceId.ToString()),
        });
        var transactionScope = new TransactionHolder();
        bool handBack = false;
        try
        {
            handBack = await RunCoreAsync(operation, transactionScope, handlerToken, shutdownToken).ConfigureAwait(false);
        }
        catch (NpgsqlException ex) when (!shutdownToken.IsCancellationRequested)
        {
            // Its outcome could not be stored while the lease lasted (the outcome writer gave up): still this node's, perhaps.
            LogOutcomeNotStored(ex);
            handBack = true;
        }
        finally
        {
            await transactionScope.DisposeAsync().ConfigureAwait(false);
        }

        if (handBack)
        {
            // The attempt keeps its slot until its operation is handed back, so this node never holds more than its slots.
            await leases.HandBackAsync(operation, shutdownToken).ConfigureAwait(false);
        }
    }

    /// <summary>Runs the attempt and stores its outcome; true when it was given up without one (see <see cref="LeaseKeeper.HandBackAsync"/>).</summary>
    private async Task<bool> RunCoreAsync(ClaimedOperation operation, TransactionHolder transactionScope, CancellationToken handlerToken,
        CancellationToken shutdownToken)
    {
        var command = commands.Find(operation.Kind);
        if (command is null)
        {
            LogUnknownKind(operation.Kind);
            await outcomes.FailAsync(operation, ProblemTypes.UnknownKind, "Unknown command kind.",
                $"No handler for '{operation.Kind}' is registered.").ConfigureAwait(false);
            return false;
        }

        // The kind's attempt timeout, as it is when the attempt starts, fires the handler's token and ends the lease's renewal.
        int? timeoutSeconds = kindSettings.For(operation.Kind).AttemptTimeoutSeconds;
        using var timeout = timeoutSeconds is { } seconds ? new CancellationTokenSource(TimeSpan.FromSeconds(seconds), workerContext.Time) : null;
        using var timedOrCancelled = timeout is null ? null : CancellationTokenSource.CreateLinkedTokenSource(handlerToken, timeout.Token);
        using var stopRenewing = timeout?.Token.Register(() => running.StopRenewing(operation.Id));
        var token = timedOrCancelled?.Token ?? handlerToken;
        string resultJson;
        try
        {
            NpgsqlTransaction? transaction = null;
            if (command.Transactional)
            {
                transactionScope.Connection = await dataSource.OpenConnectionAsync(token).ConfigureAwait(false);
                transaction = await transactionScope.Connection.BeginTransactionAsync(token).ConfigureAwait(false);
                transactionScope.Transaction = transaction;
            }

            Func<int, string?, CancellationToken, Task> reportProgress = (percent, message, ct) => outcomes.ReportProgressAsync(operation, percent, message, ct);
            var context = transaction is null
                ? new OperationContext(operation.Id, operation.Owner, operation.Kind, operation.Attempts, operation.MaxAttempts, reportProgress)
                : new TransactionalOperationContext(operation.Id, operation.Owner, operation.Kind, operation.Attempts, operation.MaxAttempts, reportProgress, transaction);
            await using var scope = scopeFactory.CreateAsyncScope();
            resultJson = await command.Execute(scope.ServiceProvider, operation.Payload, context, token).ConfigureAwait(false);
            if (transaction is not null)
            {
                await outcomes.SucceedInTransactionAsync(operation, transaction, resultJson).ConfigureAwait(false);
                return false;
            }
        }
        catch (OperationCanceledException) when (shutdownToken.IsCancellationRequested)
        {
            // Shutdown cancelled the handler: the lease is released, not counted as a failure.
            LogInterrupted();
            outcomes.Interrupted(operation);
            return false;
        }
        catch (OperationCanceledException) when (running.IsAbandoned(operation.Id))
        {
            // The lease could not be renewed and is about to end: nothing is written (the database is not answering,
            // and another node may have the operation by then). The lease keeper hands the operation back when the
            // database answers, unless lease rescue took it first.
            var leaseLeft = running.LeaseUntil(operation.Id) is { } until ? until - workerContext.Now() : TimeSpan.Zero;
            LogAbandoned(leaseLeft.TotalMilliseconds);
            await transactionScope.RollbackAsync().ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (handlerToken.IsCancellationRequested)
        {
            await transactionScope.RollbackAsync().ConfigureAwait(false);
            LogCancelled();
            await outcomes.CancelledAsync(operation).ConfigureAwait(false);
            return false;
        }
        catch (OperationCanceledException) when (timeout is { IsCancellationRequested: true })
        {
            await transactionScope.RollbackAsync().ConfigureAwait(false);
            await outcomes.TimedOutAsync(operation, timeoutSeconds!.Value).ConfigureAwait(false);
            return false;
        }
        catch (PermanentOperationFailureException ex)
        {
            await transactionScope.RollbackAsync().ConfigureAwait(false);
            // A permanent failure is an outcome the handler chose (insufficient funds, say), not a fault of the
            // service: logged with its type and title, without a stack trace.
            LogPermanentFailure(ex.Type, ex.Title);
            await outcomes.FailAsync(operation, ex.Type, ex.Title, ex.Detail).ConfigureAwait(false);
            return false;
        }
#pragma warning disable CA1031 // A handler's failure of any type is an outcome to record, not a crash of the worker.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            await transactionScope.RollbackAsync().ConfigureAwait(false);
            await outcomes.FailTransientlyAsync(operation, ex).ConfigureAwait(false);
            return false;
        }

        await outcomes.SucceedAsync(operation, resultJson).ConfigureAwait(false);
        return false;
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "No handler is registered for kind {Kind}")]
    private partial void LogUnknownKind(string kind);

    [LoggerMessage(Level = LogLevel.Information, Message = "Handler interrupted by shutdown; the operation will be released")]
    private partial void LogInterrupted();

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Handler stopped with its lease unrenewed, {LeaseLeftMs:0} ms before the lease ends; its operation is handed back when the database answers")]
    private partial void LogAbandoned(double leaseLeftMs);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The attempt's outcome could not be stored while its lease lasted; the operation is handed back")]
    private partial void LogOutcomeNotStored(Exception exception);

    [LoggerMessage(Level = LogLevel.Information, Message = "Handler stopped on a cancellation request")]
    private partial void LogCancelled();

    [LoggerMessage(Level = LogLevel.Information, Message = "Operation failed permanently with {ProblemType}: {Title}")]
    private partial void LogPermanentFailure(string problemType, string title);
}

/// <summary>The connection and transaction of a transactional handler's attempt, closed whatever happens.</summary>
internal sealed class TransactionHolder : IAsyncDisposable
{
    public NpgsqlConnection? Connection { get; set; }

    public NpgsqlTransaction? Transaction { get; set; }

    public async Task RollbackAsync()
    {
        if (Transaction is not { } transaction)
        {
            return;
        }

        try
        {
            // Connection is null once the transaction was committed or rolled back.
            if (transaction.Connection is not null)
            {
                await transaction.RollbackAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (NpgsqlException)
        {
            // The connection is broken: the server has rolled the transaction back already.
        }
        catch (ObjectDisposedException)
        {
            // Npgsql disposes a transaction whose connection broke (under a statement of the handler, or its COMMIT, which
            // was then settled as not committed): the server has rolled it back already.
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Transaction is not null)
        {
            await Transaction.DisposeAsync().ConfigureAwait(false);
        }

        if (Connection is not null)
        {
            await Connection.DisposeAsync().ConfigureAwait(false);
        }
    }
}
