using PollingApi.Operations;

namespace PollingApi.Ledger;

/// <summary>Why a transfer failed. Each ends the operation <c>failed</c> at once: retrying cannot help.</summary>
public static class LedgerProblemTypes
{
    public const string InsufficientFunds = ProblemTypes.Prefix + "insufficient-funds";
    public const string UnknownAccount = ProblemTypes.Prefix + "unknown-account";
    public const string CurrencyMismatch = ProblemTypes.Prefix + "currency-mismatch";
    public const string SameAccount = ProblemTypes.Prefix + "same-account";
    public const string AccountNotFound = ProblemTypes.Prefix + "account-not-found";
}
