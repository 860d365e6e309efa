using System.ComponentModel;
using System.Text.Json;
using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Http;

/// <summary>One attempt of an operation, as <c>GET /v1/operations/{id}/attempts</c> shows it.</summary>
[Description("One attempt of an operation: when it ran, where, how it ended and why.")]
internal sealed record AttemptResource(
    [property: Description("The attempt's number, from 1; a replay starts counting again.")] int Attempt,
    [property: Description("When the attempt started; null if it was never started on record.")] DateTime? StartedAt,
    [property: Description("When it ended; null while it runs.")] DateTime? EndedAt,
    [property: Description("running, succeeded, transient_failure, permanent_failure, cancelled, lease_lost (its worker stopped responding) or timed_out (its node stopped before it finished; not counted).")]
    string Outcome,
    [property: Description("Why it did not succeed: a problem object with a stable type; null otherwise.")] OperationError? Error,
    [property: Description("The node that ran it.")] string? Node,
    [property: Description("The W3C trace id the attempt belongs to: the submitting request's, when it sent traceparent.")] string? TraceId);

/// <summary>The answer of <c>GET /v1/operations/{id}/attempts</c>.</summary>
[Description("An operation's attempts, oldest first (the newest last), including the one running now.")]
internal sealed record AttemptPage([property: Description("The attempts, oldest first.")] IReadOnlyList<AttemptResource> Items)
{
    private const string Running = "running";

    public static AttemptPage From(AttemptHistoryRow row)
    {
        var items = row.AttemptHistory is null
            ? []
            : JsonSerializer.Deserialize<List<AttemptResource>>(row.AttemptHistory, OperationJson.Options) ?? [];
        if (row.Status == OperationStatus.Running)
        {
            items.Add(new AttemptResource(row.Attempts, row.StartedAt, null, Running, null, row.LockedBy, TraceIdOf(row.TraceParent)));
        }

        return new AttemptPage(items);
    }

    private static string? TraceIdOf(string? traceParent) =>
        traceParent?.Split('-') is [_, var traceId, _, _] ? traceId : null;
}
