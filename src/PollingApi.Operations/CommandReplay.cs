using System.Text.Json;
using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations;

/// <summary>
/// Whether a failed or cancelled operation of a command may be run again with <c>POST /v1/operations/{id}/retry</c>,
/// and for how long after it ended. Declared per command when it is registered; a refused replay answers
/// <c>409 replay-not-allowed</c>.
/// </summary>
public sealed record CommandReplay
{
    /// <summary>Any failed or cancelled operation may be replayed for as long as it is kept. The default.</summary>
    public static CommandReplay Allowed { get; } = new();

    /// <summary>No replay: a client that wants the work done again submits the command again.</summary>
    public static CommandReplay Never { get; } = new() { IsAllowed = false };

    /// <summary>
    /// A failure the handler declared permanent (a <see cref="Handlers.PermanentOperationFailureException"/>: a business
    /// outcome such as insufficient funds) is final; failures of the engine's own (attempts exhausted, a lost worker) and
    /// cancellations may be replayed.
    /// </summary>
    public static CommandReplay ExceptBusinessFailures { get; } = new() { AfterBusinessFailure = false };

    /// <summary>Whether replay is allowed at all.</summary>
    public bool IsAllowed { get; init; } = true;

    /// <summary>How long after the operation ended a replay is allowed; null for as long as it is kept.</summary>
    public TimeSpan? Window { get; init; }

    /// <summary>Whether an operation the handler failed permanently may be replayed.</summary>
    public bool AfterBusinessFailure { get; init; } = true;

    /// <summary>Why <paramref name="operation"/> may not be replayed at <paramref name="now"/>; null when it may.</summary>
    internal string? RefusalFor(OperationRow operation, DateTime now)
    {
        if (!IsAllowed)
        {
            return $"operations of kind {operation.Kind} are not replayed; submit the command again";
        }

        if (Window is { } window && operation.CompletedAt is { } completedAt && now - completedAt > window)
        {
            return $"operations of kind {operation.Kind} can be replayed for {window} after they end; submit the command again";
        }

        if (!AfterBusinessFailure && operation.Status == OperationStatus.Failed && IsBusinessFailure(operation.Error))
        {
            return $"a {operation.Kind} operation that its handler failed permanently is final; submit the command again";
        }

        return null;
    }

    private static readonly HashSet<string> EngineFailures =
        [ProblemTypes.AttemptsExhausted, ProblemTypes.LeaseExpired, ProblemTypes.UnknownKind];

    private static bool IsBusinessFailure(string? errorJson)
    {
        if (errorJson is null)
        {
            return false;
        }

        using var error = JsonDocument.Parse(errorJson);
        return error.RootElement.TryGetProperty("type", out var type) && type.GetString() is { } name && !EngineFailures.Contains(name);
    }
}
