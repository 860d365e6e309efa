using System.ComponentModel;
using System.Text.Json.Serialization;

namespace PollingApi.Operations.Model;

/// <summary>Why a pending operation waits, where it stands and when it is expected to start: an estimate.</summary>
[Description("Why a pending operation is waiting and when it is expected to start: an estimate from what the node knows of its kind's " +
             "queues (refreshed every few seconds), not a count made for this answer.")]
internal sealed record OperationQueue(
    [property: Description("About how many due operations of the kind are claimed before this one: 0 when none is ahead. For a scheduled " +
                           "operation or a waiting retry, those expected to be still waiting when it falls due.")]
    int Position,
    [property: Description(OperationQueue.ReasonDescription)] OperationQueueReason Reason,
    [property: Description("When it is expected to start, from its position and how fast its kind's operations have been ending lately; " +
                           "never before it falls due. Null while its kind is paused, or when too little has run lately to tell.")]
    DateTime? EstimatedStartAt)
{
    public const string ReasonDescription =
        "Why it is waiting: queued (for a worker, behind position others), scheduled (its Operation-Scheduled-At is ahead), " +
        "retry-backoff (a failed attempt's retry waits out its backoff), paused (an operator paused its kind; this comes first), " +
        "concurrency-limit (its kind's or its tenant's cap of running operations is reached).";
}

/// <summary>Why a pending operation is waiting, as the API spells it.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<OperationQueueReason>))]
internal enum OperationQueueReason
{
    [JsonStringEnumMemberName("queued")]
    Queued,

    [JsonStringEnumMemberName("scheduled")]
    Scheduled,

    [JsonStringEnumMemberName("retry-backoff")]
    RetryBackoff,

    [JsonStringEnumMemberName("paused")]
    Paused,

    [JsonStringEnumMemberName("concurrency-limit")]
    ConcurrencyLimit,
}
