using System.ComponentModel;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Http;

/// <summary>The answer of <c>GET /v1/admin/stats</c>.</summary>
[Description("What every kind of operation is doing, cluster-wide, for operators.")]
internal sealed record AdminStats(
    [property: Description("When the numbers were read.")] DateTime GeneratedAt,
    [property: Description("The window of the succeeded, failed and run-time figures, in seconds (300).")] int WindowSeconds,
    [property: Description("One entry per kind: every registered kind, and any other kind still in the table.")] IReadOnlyList<KindStats> Kinds)
{
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(5);

    internal static async Task<Ok<AdminStats>> ReadAsync(OperationStore store, CommandRegistry commands, TimeProvider timeProvider,
        CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow().UtcDateTime;
        var rows = (await store.ReadKindActivityAsync(now, now - Window, cancellationToken).ConfigureAwait(false)).ToDictionary(r => r.Kind);
        var kinds = rows.Keys.Union(commands.All.Select(c => c.Kind)).Order(StringComparer.Ordinal)
            .Select(kind => KindStats.From(kind, rows.GetValueOrDefault(kind), now))
            .ToList();
        return TypedResults.Ok(new AdminStats(now, (int)Window.TotalSeconds, kinds));
    }
}

/// <summary>One kind's figures.</summary>
[Description("One kind of operation: its queue now, and what finished in the window.")]
internal sealed record KindStats(
    [property: Description("The command kind.")] string Kind,
    [property: Description("Pending and due now.")] long Pending,
    [property: Description("Running now.")] long Running,
    [property: Description("Pending, waiting for a retry's backoff.")] long ScheduledRetries,
    [property: Description("Succeeded within the window.")] long Succeeded,
    [property: Description("Failed within the window.")] long Failed,
    [property: Description("How long the longest-waiting due operation has waited, in seconds; 0 when none is due.")] double OldestPendingAgeSeconds,
    [property: Description("Median run time of the window's successes (last attempt), in seconds; null without successes.")] double? RunTimeP50Seconds,
    [property: Description("95th percentile of the same; null without successes.")] double? RunTimeP95Seconds)
{
    internal static KindStats From(string kind, KindActivityRow? row, DateTime now) => row is null
        ? new KindStats(kind, 0, 0, 0, 0, 0, 0, null, null)
        : new KindStats(kind, row.Pending, row.Running, row.ScheduledRetries, row.Succeeded, row.Failed,
            row.OldestDueAt is { } due ? Math.Max(0, (now - due).TotalSeconds) : 0, row.RunP50, row.RunP95);
}
