namespace PollingApi.Operations.Handlers;

/// <summary>
/// Runs one kind of command. The engine calls <see cref="HandleAsync"/> once per attempt, in a DI scope
/// of its own, and stores what it returns as the operation's result.
/// </summary>
/// <remarks>
/// Delivery is at least once: after a crash or a lost lease the same operation can be handled again,
/// so a handler must be idempotent. Throw <see cref="PermanentOperationFailureException"/> for a failure
/// that retrying cannot fix; any other exception is treated as transient and retried with backoff
/// until the command's attempts are used up.
/// </remarks>
/// <typeparam name="TRequest">The validated request body the operation was submitted with.</typeparam>
/// <typeparam name="TResult">The result stored when the operation succeeds.</typeparam>
public interface IOperationHandler<in TRequest, TResult>
    where TRequest : notnull
    where TResult : notnull
{
    /// <summary>Does the work of one attempt.</summary>
    /// <param name="request">The stored request.</param>
    /// <param name="context">The operation being handled and ways to report on it.</param>
    /// <param name="cancellationToken">Fires when the worker is shutting down or the operation was cancelled.</param>
    Task<TResult> HandleAsync(TRequest request, OperationContext context, CancellationToken cancellationToken);
}

/// <summary>
/// Runs one kind of command inside the engine's transaction: the handler's writes in
/// <see cref="TransactionalOperationContext.Transaction"/> commit together with the operation's <c>succeeded</c>
/// transition, or not at all. Registered with <c>AddTransactionalCommand</c>. Keep such handlers short: the transaction
/// is open while they run. Otherwise as <see cref="IOperationHandler{TRequest, TResult}"/>.
/// </summary>
/// <typeparam name="TRequest">The validated request body the operation was submitted with.</typeparam>
/// <typeparam name="TResult">The result stored when the operation succeeds.</typeparam>
public interface ITransactionalOperationHandler<in TRequest, TResult>
    where TRequest : notnull
    where TResult : notnull
{
    /// <summary>Does the work of one attempt, writing in the engine's transaction.</summary>
    /// <param name="request">The stored request.</param>
    /// <param name="context">The operation being handled, its transaction, and ways to report on it.</param>
    /// <param name="cancellationToken">Fires when the worker is shutting down or the operation was cancelled.</param>
    Task<TResult> HandleAsync(TRequest request, TransactionalOperationContext context, CancellationToken cancellationToken);
}
