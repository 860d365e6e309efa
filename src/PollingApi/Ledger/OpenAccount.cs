using FluentValidation;
using PollingApi.Operations.Handlers;

namespace PollingApi.Ledger;

/// <summary>Open an account.</summary>
/// <param name="Currency">ISO 4217 code, e.g. EUR.</param>
/// <param name="OpeningBalance">The starting balance in minor units (cents), 0 to 1000000000000.</param>
public sealed record OpenAccountRequest(string? Currency, long OpeningBalance = 0);

public sealed class OpenAccountRequestValidator : AbstractValidator<OpenAccountRequest>
{
    public OpenAccountRequestValidator()
    {
        RuleFor(r => r.Currency).NotEmpty().Matches("^[A-Z]{3}$").WithMessage("'currency' must be a three-letter ISO 4217 code such as EUR.");
        RuleFor(r => r.OpeningBalance).InclusiveBetween(0, LedgerStore.MaxAmount);
    }
}

/// <summary>The account that was opened.</summary>
/// <param name="AccountId">The new account's id.</param>
/// <param name="Currency">Its currency.</param>
/// <param name="Balance">Its balance in minor units.</param>
public sealed record OpenAccountResult(Guid AccountId, string Currency, long Balance);

/// <summary>Opens the account and books its opening balance, in the engine's transaction (exactly once).</summary>
public sealed class OpenAccountHandler(LedgerStore ledger, TimeProvider timeProvider) : ITransactionalOperationHandler<OpenAccountRequest, OpenAccountResult>
{
    public async Task<OpenAccountResult> HandleAsync(OpenAccountRequest request, TransactionalOperationContext context, CancellationToken cancellationToken)
    {
        var transaction = context.Transaction;
        var account = Guid.CreateVersion7(timeProvider.GetUtcNow());
        await ledger.OpenAsync(transaction, account, context.Tenant, request.Currency!, request.OpeningBalance, context.OperationId,
            timeProvider.GetUtcNow().UtcDateTime, cancellationToken).ConfigureAwait(false);
        return new OpenAccountResult(account, request.Currency!, request.OpeningBalance);
    }
}
