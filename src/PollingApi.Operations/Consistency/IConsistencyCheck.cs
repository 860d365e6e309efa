using System.ComponentModel;

namespace PollingApi.Operations;

/// <summary>
/// One check of the data's integrity, run by <c>GET /v1/admin/consistency</c> and by the once-per-cluster
/// consistency job. A check reports holes; it never repairs them.
/// </summary>
public interface IConsistencyCheck
{
    /// <summary>Looks for problems; an empty list when there are none.</summary>
    Task<IReadOnlyList<ConsistencyFinding>> RunAsync(CancellationToken cancellationToken);
}

/// <summary>One kind of hole, with the ids involved and what to do about it.</summary>
[Description("A hole the consistency check found.")]
public sealed record ConsistencyFinding(
    [property: Description("The check that found it, e.g. running-past-lease.")] string Check,
    [property: Description("What is wrong.")] string Description,
    [property: Description("The ids involved (operations or accounts), at most 100.")] IReadOnlyList<Guid> Ids,
    [property: Description("What an operator should do.")] string Action);

/// <summary>The answer of <c>GET /v1/admin/consistency</c>.</summary>
[Description("The result of a consistency check.")]
internal sealed record ConsistencyReport(
    [property: Description("When the checks ran.")] DateTime CheckedAt,
    [property: Description("What was found; empty when everything is consistent.")] IReadOnlyList<ConsistencyFinding> Findings);
