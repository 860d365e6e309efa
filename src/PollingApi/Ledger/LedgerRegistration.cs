using PollingApi.Operations;

namespace PollingApi.Ledger;

/// <summary>The ledger: two transactional commands, an account read endpoint, its schema and its consistency checks.</summary>
public static class LedgerRegistration
{
    public static OperationsBuilder AddLedger(this OperationsBuilder operations)
    {
        ArgumentNullException.ThrowIfNull(operations);
        operations.Services.AddSingleton<LedgerStore>();
        return operations
            .AddMigrations(typeof(LedgerStore).Assembly)
            .AddConsistencyCheck<LedgerConsistencyCheck>()
            .AddTransactionalCommand<OpenAccountRequest, OpenAccountResult, OpenAccountHandler>("accounts.open", "/v1/accounts")
            // A transfer refused for a business reason (insufficient funds, an unknown account) stays refused: replaying it
            // later could move money the client no longer meant to move. A client submits a new transfer instead.
            .AddTransactionalCommand<CreateTransferRequest, CreateTransferResult, CreateTransferHandler>("transfers.create", "/v1/transfers",
                replay: CommandReplay.ExceptBusinessFailures);
    }
}
