namespace PollingApi.Operations.Storage;

/// <summary>One row of the <c>operations</c> table, as the store reads it.</summary>
public sealed record OperationRow
{
    public Guid Id { get; init; }
    public string Owner { get; init; } = "";
    public string Kind { get; init; } = "";
    public string Status { get; init; } = "";
    public string Payload { get; init; } = "";
    public string? Result { get; init; }
    public string? Error { get; init; }
    public string? IdempotencyKey { get; init; }
    public byte[]? RequestHash { get; init; }
    public int Attempts { get; init; }
    public int MaxAttempts { get; init; }
    public DateTime NextAttemptAt { get; init; }
    public string? LockedBy { get; init; }
    public DateTime? LockedUntil { get; init; }
    public bool CancelRequested { get; init; }
    public string? Progress { get; init; }
    public string? TraceParent { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; init; }
    public DateTime? CompletedAt { get; init; }
    public DateTime? StartedAt { get; init; }
    public int Version { get; init; }
}

/// <summary>An operation lease rescue returned to pending or ended.</summary>
public sealed class RescuedOperation
{
    public Guid Id { get; init; }
    public string Status { get; init; } = "";
}

/// <summary>A lease the worker still holds after renewing it.</summary>
public sealed class RenewedLease
{
    public Guid Id { get; init; }
    public bool CancelRequested { get; init; }
}

/// <summary>What the store knows about one kind, for <c>Retry-After</c>.</summary>
public sealed class KindStatistics
{
    public string Kind { get; init; } = "";
    public long Pending { get; init; }
    public double? MeanRunSeconds { get; init; }
}

/// <summary>Filters and keyset position of a page of operations.</summary>
public sealed record OperationQuery(string? Status, string? Kind, DateTime? CreatedAfter, DateTime? CreatedBefore, Guid? Before, int Limit);

/// <summary>An operation a worker has just claimed: what it needs to run one attempt.</summary>
public sealed class ClaimedOperation
{
    public Guid Id { get; init; }
    public string Kind { get; init; } = "";
    public string Payload { get; init; } = "";
    public int Attempts { get; init; }
    public int MaxAttempts { get; init; }
    public string? TraceParent { get; init; }
}

/// <summary>A new operation to store.</summary>
public sealed record NewOperation(
    Guid Id,
    string Owner,
    string Kind,
    string Payload,
    int MaxAttempts,
    string? TraceParent,
    string? IdempotencyKey = null,
    byte[]? RequestHash = null);

/// <summary>A new operation for <see cref="OperationStore.InsertManyAsync"/>: pending, or claimed at once by <see cref="ClaimedBy"/>.</summary>
public sealed record OperationInsert(NewOperation Operation, DateTime CreatedAt, string? ClaimedBy)
{
    /// <summary>The row as <see cref="OperationStore.InsertManyAsync"/> stores it.</summary>
    public OperationRow ToRow(TimeSpan leaseDuration) => new()
    {
        Id = Operation.Id,
        Owner = Operation.Owner,
        Kind = Operation.Kind,
        Status = ClaimedBy is null ? OperationStatus.Pending : OperationStatus.Running,
        Payload = Operation.Payload,
        Attempts = ClaimedBy is null ? 0 : 1,
        MaxAttempts = Operation.MaxAttempts,
        NextAttemptAt = CreatedAt,
        LockedBy = ClaimedBy,
        LockedUntil = ClaimedBy is null ? null : CreatedAt + leaseDuration,
        TraceParent = Operation.TraceParent,
        CreatedAt = CreatedAt,
        UpdatedAt = CreatedAt,
        StartedAt = ClaimedBy is null ? null : CreatedAt,
        Version = 1,
    };

    /// <summary>What the claiming node needs to run the first attempt.</summary>
    public ClaimedOperation ToClaimed() => new()
    {
        Id = Operation.Id,
        Kind = Operation.Kind,
        Payload = Operation.Payload,
        Attempts = 1,
        MaxAttempts = Operation.MaxAttempts,
        TraceParent = Operation.TraceParent,
    };
}

/// <summary>What an operation's last transition left: enough to tell whether an outcome write was committed.</summary>
public sealed record OperationOutcome(string Status, int Attempts, string? LockedBy, string? ErrorType);

/// <summary>A successful attempt's result for <see cref="OperationStore.CompleteManyAsync"/>.</summary>
public sealed record OperationCompletion(Guid Id, string NodeId, int Attempt, string ResultJson, DateTime CompletedAt);
