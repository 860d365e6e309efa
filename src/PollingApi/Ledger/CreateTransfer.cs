using FluentValidation;
using PollingApi.Operations.Handlers;

namespace PollingApi.Ledger;

/// <summary>Move money between two accounts of the same currency.</summary>
/// <param name="From">The account debited.</param>
/// <param name="To">The account credited.</param>
/// <param name="Amount">Minor units (cents), 1 to 1000000000000.</param>
/// <param name="Currency">Must be the currency of both accounts.</param>
public sealed record CreateTransferRequest(Guid? From, Guid? To, long Amount, string? Currency);

public sealed class CreateTransferRequestValidator : AbstractValidator<CreateTransferRequest>
{
    public CreateTransferRequestValidator()
    {
        RuleFor(r => r.From).NotNull().NotEqual(Guid.Empty);
        RuleFor(r => r.To).NotNull().NotEqual(Guid.Empty);
        RuleFor(r => r.Amount).InclusiveBetween(1, LedgerStore.MaxAmount);
        RuleFor(r => r.Currency).NotEmpty().Matches("^[A-Z]{3}$").WithMessage("'currency' must be a three-letter ISO 4217 code such as EUR.");
    }
}

/// <summary>A booked transfer.</summary>
/// <param name="TransferId">The transfer's id: its operation's id, also on both ledger entries.</param>
/// <param name="From">The account debited.</param>
/// <param name="To">The account credited.</param>
/// <param name="Amount">Minor units moved.</param>
/// <param name="Currency">The currency.</param>
/// <param name="FromBalance">The debited account's balance after the transfer.</param>
/// <param name="ToBalance">The credited account's balance after the transfer.</param>
public sealed record CreateTransferResult(Guid TransferId, Guid From, Guid To, long Amount, string Currency, long FromBalance, long ToBalance);

/// <summary>
/// Books one debit and one credit in the engine's transaction, so they commit exactly once together with the
/// operation's success. Unknown accounts, a currency mismatch, the same account twice or insufficient funds end
/// the operation failed at once.
/// </summary>
public sealed class CreateTransferHandler(LedgerStore ledger, TimeProvider timeProvider) : ITransactionalOperationHandler<CreateTransferRequest, CreateTransferResult>
{
    public async Task<CreateTransferResult> HandleAsync(CreateTransferRequest request, TransactionalOperationContext context, CancellationToken cancellationToken)
    {
        var transaction = context.Transaction;
        var from = request.From!.Value;
        var to = request.To!.Value;
        if (from == to)
        {
            throw new PermanentOperationFailureException(LedgerProblemTypes.SameAccount, "A transfer needs two different accounts.",
                $"Account {from} is both the source and the destination.");
        }

        // Locked in id order, so that concurrent transfers between the same accounts cannot deadlock. Only the submitting
        // tenant's accounts are found: another tenant's account is unknown, exactly like one that does not exist.
        var accounts = await ledger.LockAsync(transaction, [from, to], context.Tenant, cancellationToken).ConfigureAwait(false);
        foreach (var id in new[] { from, to })
        {
            if (!accounts.ContainsKey(id))
            {
                throw new PermanentOperationFailureException(LedgerProblemTypes.UnknownAccount, "The account does not exist.",
                    $"There is no account {id}.");
            }
        }

        var source = accounts[from];
        var destination = accounts[to];
        if (source.Currency != request.Currency || destination.Currency != request.Currency)
        {
            throw new PermanentOperationFailureException(LedgerProblemTypes.CurrencyMismatch, "The currencies do not match.",
                $"The transfer is in {request.Currency}; account {from} holds {source.Currency} and account {to} holds {destination.Currency}.");
        }

        if (source.Balance < request.Amount)
        {
            throw new PermanentOperationFailureException(LedgerProblemTypes.InsufficientFunds, "The source account has insufficient funds.",
                $"Account {from} holds {source.Balance} and the transfer needs {request.Amount}.");
        }

        await ledger.BookTransferAsync(transaction, context.OperationId, from, to, request.Amount, timeProvider.GetUtcNow().UtcDateTime,
            cancellationToken).ConfigureAwait(false);
        return new CreateTransferResult(context.OperationId, from, to, request.Amount, request.Currency!,
            source.Balance - request.Amount, destination.Balance + request.Amount);
    }
}
