using System.Collections.Concurrent;
using System.Text.Json.Nodes;

namespace PollingApi.FaultTests.Infrastructure;

/// <summary>
/// What a scenario found: its violated invariants (each a failure of the run) and the numbers of its JSON summary.
/// </summary>
internal sealed class ScenarioReport(string scenario)
{
    private const int ExamplesPerCheck = 5;

    private readonly ConcurrentQueue<(string Check, string Detail)> _violations = new();

    public string Scenario { get; } = scenario;

    /// <summary>The summary's numbers, in the order they are added; "scenario" and the verdict are added when printed.</summary>
    public JsonObject Summary { get; } = [];

    public int ViolationCount => _violations.Count;

    /// <summary>Records a broken invariant. <paramref name="check"/> names the invariant, <paramref name="detail"/> the case.</summary>
    public void Violation(string check, string detail) => _violations.Enqueue((check, detail));

    /// <summary>Checks one invariant over many cases: every failing case is counted, the first few are shown.</summary>
    public void Require(bool condition, string check, Func<string> detail)
    {
        if (!condition)
        {
            Violation(check, detail());
        }
    }

    /// <summary>The violations grouped by invariant, with a few examples each.</summary>
    public IEnumerable<string> DescribeViolations() =>
        _violations.GroupBy(v => v.Check, StringComparer.Ordinal).SelectMany(group =>
        {
            var lines = group.Take(ExamplesPerCheck).Select(v => $"VIOLATION [{Scenario}] {group.Key}: {v.Detail}").ToList();
            int more = group.Count() - ExamplesPerCheck;
            if (more > 0)
            {
                lines.Add($"VIOLATION [{Scenario}] {group.Key}: ... and {more} more");
            }

            return lines;
        });

    /// <summary>The one-line JSON summary: <c>{"scenario": ..., ..., "violations": N, "passed": bool}</c>.</summary>
    public string SummaryLine(TimeSpan duration)
    {
        var line = new JsonObject { ["scenario"] = Scenario };
        foreach (var (name, value) in Summary)
        {
            line[name] = value?.DeepClone();
        }

        line["durationSeconds"] = Math.Round(duration.TotalSeconds, 1);
        line["violations"] = ViolationCount;
        line["violatedChecks"] = new JsonArray([.. _violations.Select(v => v.Check).Distinct(StringComparer.Ordinal).Select(c => JsonValue.Create(c))]);
        line["passed"] = ViolationCount == 0;
        return line.ToJsonString();
    }
}
