using System.Globalization;
using System.Text.Json;

namespace PollingApi.FaultTests.Scenarios;

/// <summary>A command the harness submits, with what it expects of the outcome.</summary>
internal abstract record Command(string Kind, string Route)
{
    public abstract string Json { get; }
}

/// <summary><c>POST /v1/diagnostics/sleep</c>.</summary>
internal sealed record SleepCommand(int DurationMs, int FailTimes, bool FailPermanently)
    : Command(Kinds.Sleep, "v1/diagnostics/sleep")
{
    public override string Json => JsonSerializer.Serialize(new { durationMs = DurationMs, failTimes = FailTimes, failPermanently = FailPermanently });

    /// <summary>Attempts it takes when no crash interferes: one, plus one per simulated transient failure.</summary>
    public int ExpectedAttempts => FailPermanently ? 1 : FailTimes + 1;
}

/// <summary><c>POST /v1/accounts</c>.</summary>
internal sealed record OpenAccountCommand(long OpeningBalance)
    : Command(Kinds.OpenAccount, "v1/accounts")
{
    public const string Currency = "EUR";

    public override string Json => JsonSerializer.Serialize(new { currency = Currency, openingBalance = OpeningBalance });
}

/// <summary><c>POST /v1/transfers</c>. <paramref name="ToUnknownAccount"/>: <paramref name="To"/> is an id no account has.</summary>
internal sealed record TransferCommand(Guid From, Guid To, long Amount, bool ToUnknownAccount)
    : Command(Kinds.Transfer, "v1/transfers")
{
    public override string Json => JsonSerializer.Serialize(new
    {
        from = From.ToString("D", CultureInfo.InvariantCulture),
        to = To.ToString("D", CultureInfo.InvariantCulture),
        amount = Amount,
        currency = OpenAccountCommand.Currency,
    });
}

/// <summary>A submit that was answered 202: the operation the API promised to run.</summary>
internal sealed record AcceptedOperation(Guid Id, Command Command);

internal static class Kinds
{
    public const string Sleep = "diagnostics.sleep";
    public const string OpenAccount = "accounts.open";
    public const string Transfer = "transfers.create";
}

internal static class ProblemTypes
{
    private const string Prefix = "urn:pollingapi:problem:";
    public const string DiagnosticsPermanentFailure = Prefix + "diagnostics-permanent-failure";
    public const string LeaseExpired = Prefix + "lease-expired";
    public const string AttemptTimedOut = Prefix + "attempt-timed-out";
    public const string AttemptsExhausted = Prefix + "attempts-exhausted";
    public const string InsufficientFunds = Prefix + "insufficient-funds";
    public const string UnknownAccount = Prefix + "unknown-account";
    public const string DatabaseUnavailable = Prefix + "database-unavailable";
    public const string CommitOutcomeUnknown = Prefix + "commit-outcome-unknown";
    public const string OperationNotFound = Prefix + "operation-not-found";
}
