using Npgsql;

namespace PollingApi.Operations.Handlers;

/// <summary>What a handler knows about the operation it is running, and how it reports back.</summary>
public class OperationContext
{
    private readonly Func<int, string?, CancellationToken, Task> _reportProgress;

    internal OperationContext(Guid operationId, string tenant, string kind, int attempt, int maxAttempts,
        Func<int, string?, CancellationToken, Task> reportProgress)
    {
        OperationId = operationId;
        Tenant = tenant;
        Kind = kind;
        Attempt = attempt;
        MaxAttempts = maxAttempts;
        _reportProgress = reportProgress;
    }

    /// <summary>The operation's id.</summary>
    public Guid OperationId { get; }

    /// <summary>
    /// The tenant that submitted the operation. What the handler reads or writes on the caller's behalf must belong to
    /// this tenant: another tenant's data is to be treated as not there.
    /// </summary>
    public string Tenant { get; }

    /// <summary>The command kind, e.g. <c>diagnostics.sleep</c>.</summary>
    public string Kind { get; }

    /// <summary>This attempt's number, starting at 1.</summary>
    public int Attempt { get; }

    /// <summary>How many attempts the operation gets in all.</summary>
    public int MaxAttempts { get; }

    /// <summary>Publishes progress that pollers see in the operation's <c>progress</c> field.</summary>
    /// <param name="percent">0 to 100.</param>
    /// <param name="message">A short note for humans, at most 500 characters.</param>
    /// <param name="cancellationToken">
    /// Stops waiting for the write: the call throws <see cref="OperationCanceledException"/> as soon as it fires. The write
    /// itself goes on; like every write of the attempt it is stored only while the attempt holds its lease.
    /// </param>
    public Task ReportProgressAsync(int percent, string? message, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(percent, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(percent, 100);
        if (message is { Length: > 500 })
        {
            throw new ArgumentException("A progress message is at most 500 characters.", nameof(message));
        }

        return _reportProgress(percent, message, cancellationToken);
    }
}

/// <summary>
/// The context of a transactional command's attempt (see <see cref="ITransactionalOperationHandler{TRequest, TResult}"/>):
/// an <see cref="OperationContext"/> with the engine's transaction.
/// </summary>
public sealed class TransactionalOperationContext : OperationContext
{
    internal TransactionalOperationContext(Guid operationId, string tenant, string kind, int attempt, int maxAttempts,
        Func<int, string?, CancellationToken, Task> reportProgress, NpgsqlTransaction transaction)
        : base(operationId, tenant, kind, attempt, maxAttempts, reportProgress)
    {
        Transaction = transaction;
    }

    /// <summary>
    /// The engine's transaction. Writes made in it commit in the same transaction that marks the operation
    /// <c>succeeded</c>, and are rolled back if the handler fails or the attempt lost its lease meanwhile: exactly-once
    /// effects for writes in this database.
    /// </summary>
    public NpgsqlTransaction Transaction { get; }

    /// <summary>The connection of <see cref="Transaction"/>.</summary>
    public NpgsqlConnection Connection => Transaction.Connection!;
}
