using Dapper;
using PollingApi.Operations.Model;

namespace PollingApi.Operations.Storage;

/// <summary>
/// Lets Dapper map the tables' snake_case columns onto the engine's row types. Registered for these types only (not
/// with Dapper's process-wide <c>MatchNamesWithUnderscores</c>), so a host's own Dapper queries map as they did.
/// </summary>
internal static class RowMapping
{
    private static readonly Lazy<bool> Registered = new(() =>
    {
        foreach (var type in new[] { typeof(OperationRow), typeof(ClaimedOperation), typeof(RescuedOperation), typeof(RenewedLease), typeof(KindStatistics), typeof(TenantRunning), typeof(ApiKeyRow), typeof(AttemptHistoryRow), typeof(KindActivityRow), typeof(ThroughputRow), typeof(FailureGroupRow) })
        {
            SqlMapper.SetTypeMap(type, new CustomPropertyTypeMap(type, (t, column) => t.GetProperty(
                column.Replace("_", "", StringComparison.Ordinal),
                System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.IgnoreCase)!));
        }

        return true;
    });

    public static void EnsureRegistered() => _ = Registered.Value;
}

/// <summary>The column lists the statements read operations with.</summary>
internal static class OperationColumns
{
    /// <summary>Every column, as <see cref="OperationRow"/> maps them.</summary>
    public const string All = """
        id, owner, kind, status, payload::text AS payload, result::text AS result, error::text AS error,
        idempotency_key, request_hash, attempts, max_attempts, next_attempt_at, locked_by, locked_until,
        cancel_requested, progress::text AS progress, trace_parent, created_at, updated_at, completed_at, started_at, version,
        scheduled_at, priority
        """;

    /// <summary>What an answer shows: everything but the submitted payload and the idempotency key's request hash.</summary>
    public const string View = """
        id, owner, kind, status, result::text AS result, error::text AS error, attempts, max_attempts, next_attempt_at,
        locked_by, locked_until, cancel_requested, progress::text AS progress, trace_parent, created_at, updated_at, completed_at,
        started_at, version, scheduled_at, priority
        """;
}

/// <summary>One row of the <c>operations</c> table, as the store reads it.</summary>
internal sealed record OperationRow
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
    public DateTime? ScheduledAt { get; init; }
    public short Priority { get; init; } = 5;
}

/// <summary>What operators see of one kind (see <see cref="OperationStore.ReadKindActivityAsync"/>).</summary>
internal sealed class KindActivityRow
{
    public string Kind { get; init; } = "";
    public long Pending { get; init; }
    public long Running { get; init; }
    public long ScheduledRetries { get; init; }
    public long Succeeded { get; init; }
    public long Failed { get; init; }
    public DateTime? OldestDueAt { get; init; }
    public double? RunP50 { get; init; }
    public double? RunP95 { get; init; }
}

/// <summary>Completions in one interval of the stats window.</summary>
internal sealed class ThroughputRow
{
    public int Bucket { get; init; }
    public long Succeeded { get; init; }
    public long Failed { get; init; }
}

/// <summary>Failed operations of one kind with one error type.</summary>
internal sealed class FailureGroupRow
{
    public string Kind { get; init; } = "";
    public string ErrorType { get; init; } = "";
    public string? Title { get; init; }
    public long Count { get; init; }
    public DateTime? LastFailedAt { get; init; }
}

/// <summary>An operation's attempt history (the <c>attempt_history</c> JSON) and its current attempt, if one runs.</summary>
internal sealed class AttemptHistoryRow
{
    public string? AttemptHistory { get; init; }
    public string Status { get; init; } = "";
    public int Attempts { get; init; }
    public DateTime? StartedAt { get; init; }
    public string? LockedBy { get; init; }
    public string? TraceParent { get; init; }
}

/// <summary>An operation lease rescue returned to pending or ended.</summary>
internal sealed class RescuedOperation
{
    public Guid Id { get; init; }
    public string Kind { get; init; } = "";
    public string Status { get; init; } = "";
}

/// <summary>A lease the worker still holds after renewing it.</summary>
internal sealed class RenewedLease
{
    public Guid Id { get; init; }
    public bool CancelRequested { get; init; }
}

/// <summary>What <see cref="OperationStore.ReadQueueStatisticsAsync"/> reads: every kind with work, and what each tenant runs.</summary>
internal sealed record QueueStatistics(IReadOnlyList<KindStatistics> Kinds, IReadOnlyList<TenantRunning> Tenants);

/// <summary>What the store knows about one kind, for <c>Retry-After</c>, the queue estimate and the queue gauges.</summary>
internal sealed class KindStatistics
{
    public string Kind { get; init; } = "";

    /// <summary>Pending and due now.</summary>
    public long Pending { get; init; }

    /// <summary>Pending, due or waiting for a retry's backoff.</summary>
    public long PendingAll { get; init; }

    public long Running { get; init; }

    /// <summary>When the longest-waiting due operation fell due; null when none is due.</summary>
    public DateTime? OldestDueAt { get; init; }

    /// <summary>The claim key (<c>operations_claim_key</c>) of the due operation claimed first; null when none is due.</summary>
    public DateTime? FirstDueKey { get; init; }

    /// <summary>The claim key of the due operation claimed last; null when none is due.</summary>
    public DateTime? LastDueKey { get; init; }

    public double? MeanRunSeconds { get; init; }

    /// <summary>Operations of the kind that ended (any way) per second, lately; null when none did.</summary>
    public double? CompletionsPerSecond { get; init; }
}

/// <summary>How many of a tenant's operations run, across kinds and nodes.</summary>
internal sealed class TenantRunning
{
    public string Owner { get; init; } = "";
    public long Running { get; init; }
}

/// <summary>Filters and keyset position of a page of operations.</summary>
internal sealed record OperationQuery(string? Status, string? Kind, DateTime? CreatedAfter, DateTime? CreatedBefore, Guid? Before, int Limit,
    string? Tenant = null);

/// <summary>Which operations a bulk retry or cancel applies to; a null filter is not applied, and they combine.</summary>
internal sealed record BulkFilter(string? Owner, string? Kind, string? ErrorType, DateTime? CreatedAfter, DateTime? CreatedBefore);

/// <summary>An operation a worker has just claimed: what it needs to run one attempt.</summary>
internal sealed class ClaimedOperation
{
    public Guid Id { get; init; }

    /// <summary>When this node started the attempt (a <see cref="System.Diagnostics.Stopwatch"/> timestamp): its duration's start.</summary>
    public long StartedTimestamp { get; set; }

    public string Owner { get; init; } = "";
    public string Kind { get; init; } = "";
    public string Payload { get; init; } = "";
    public int Attempts { get; init; }
    public int MaxAttempts { get; init; }
    public string? TraceParent { get; init; }

    /// <summary>When the lease this node stored with the claim (or the insert) ends; null when not known.</summary>
    public DateTime? LeaseUntil { get; set; }

    /// <summary>
    /// Set by a claim when one of the queues it took from gave its whole share: more may be due there, so the worker
    /// claims again at once even though the batch was not full.
    /// </summary>
    public bool MoreDue { get; init; }
}

/// <summary>A new operation to store.</summary>
internal sealed record NewOperation(
    Guid Id,
    string Owner,
    string Kind,
    string Payload,
    int MaxAttempts,
    string? TraceParent,
    string? IdempotencyKey = null,
    byte[]? RequestHash = null,
    DateTime? ScheduledAt = null,
    short Priority = 5);

/// <summary>A new operation for <see cref="OperationStore.InsertManyAsync"/>: pending, or claimed at once by <see cref="ClaimedBy"/>.</summary>
internal sealed record OperationInsert(NewOperation Operation, DateTime CreatedAt, string? ClaimedBy)
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
        NextAttemptAt = Operation.ScheduledAt ?? CreatedAt,
        ScheduledAt = Operation.ScheduledAt,
        Priority = Operation.Priority,
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
        Owner = Operation.Owner,
        Kind = Operation.Kind,
        Payload = Operation.Payload,
        Attempts = 1,
        MaxAttempts = Operation.MaxAttempts,
        TraceParent = Operation.TraceParent,
    };
}

/// <summary>What an operation's last transition left: enough to tell whether an outcome write was committed.</summary>
internal sealed record OperationOutcome(string Status, int Attempts, string? LockedBy, string? ErrorType);

/// <summary>A successful attempt's result for <see cref="AttemptStore.CompleteManyAsync"/>.</summary>
internal sealed record OperationCompletion(Guid Id, string NodeId, int Attempt, string ResultJson, DateTime CompletedAt);
