using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json.Nodes;
using PollingApi.FuzzTests.Sending;

namespace PollingApi.FuzzTests.Checks;

/// <summary>
/// What the run found: the violated checks (each a failure of the run, every case kept for the run folder) and the
/// numbers of the summary: answers by status, by family, and the requests that got no answer.
/// </summary>
internal sealed class FuzzReport
{
    private const int ExamplesPerCheck = 10;
    private const int ExamplesPerNote = 3;
    private const int NoteLength = 400;

    private readonly ConcurrentQueue<(string Check, string Detail)> _violations = new();
    private readonly ConcurrentDictionary<int, int> _byStatus = new();
    private readonly ConcurrentDictionary<OutcomeKind, int> _byOutcome = new();
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, int>> _byFamily = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ConcurrentQueue<string>> _notes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _noteCounts = new(StringComparer.Ordinal);
    private int _sent;

    public int Sent => _sent;

    public int ViolationCount => _violations.Count;

    public IEnumerable<string> ViolatedChecks => _violations.Select(v => v.Check).Distinct(StringComparer.Ordinal);

    /// <summary>Records a broken check. <paramref name="check"/> names it, <paramref name="detail"/> the case (with what to send to see it again).</summary>
    public void Violation(string check, string detail) => _violations.Enqueue((check, detail));

    /// <summary>Something worth knowing that is not a failure: counted, the first few kept.</summary>
    public void Note(string category, string detail)
    {
        _noteCounts.AddOrUpdate(category, 1, (_, n) => n + 1);
        var examples = _notes.GetOrAdd(category, _ => new ConcurrentQueue<string>());
        if (examples.Count < ExamplesPerNote)
        {
            examples.Enqueue(detail.Length <= NoteLength ? detail : detail[..NoteLength] + "...");
        }
    }

    /// <summary>Counts a request that was sent, by its outcome, its answers' statuses and its family.</summary>
    public void Count(string family, FuzzOutcome outcome)
    {
        if (outcome.Kind == OutcomeKind.RefusedByClient)
        {
            _byOutcome.AddOrUpdate(outcome.Kind, 1, (_, n) => n + 1);
            return;
        }

        Interlocked.Increment(ref _sent);
        _byOutcome.AddOrUpdate(outcome.Kind, 1, (_, n) => n + 1);
        var familyCounts = _byFamily.GetOrAdd(family, _ => new ConcurrentDictionary<string, int>(StringComparer.Ordinal));
        if (outcome.Answers.Count == 0)
        {
            familyCounts.AddOrUpdate(OutcomeName(outcome.Kind), 1, (_, n) => n + 1);
        }

        foreach (var answer in outcome.Answers)
        {
            _byStatus.AddOrUpdate(answer.Status, 1, (_, n) => n + 1);
            familyCounts.AddOrUpdate($"{answer.Status / 100}xx", 1, (_, n) => n + 1);
        }
    }

    public int Outcomes(OutcomeKind kind) => _byOutcome.GetValueOrDefault(kind);

    /// <summary>The violations grouped by check, with the first few cases of each.</summary>
    public IEnumerable<string> DescribeViolations() => Group(_violations, ExamplesPerCheck);

    /// <summary>Every violation, one per line, for the run folder.</summary>
    public IEnumerable<string> AllViolations() => _violations.Select(v => $"VIOLATION {v.Check}: {v.Detail}");

    public IEnumerable<string> DescribeNotes() =>
        _noteCounts.OrderBy(n => n.Key, StringComparer.Ordinal).SelectMany(n =>
            new[] { $"note: {n.Key}: {n.Value.ToString(CultureInfo.InvariantCulture)}" }
                .Concat(_notes[n.Key].Select(example => $"  e.g. {example}")));

    /// <summary>The human summary: answers by status class and code, requests without answers, and per family.</summary>
    public IEnumerable<string> DescribeCounts()
    {
        var classes = _byStatus.GroupBy(s => s.Key / 100).OrderBy(g => g.Key)
            .Select(g => $"{g.Key.ToString(CultureInfo.InvariantCulture)}xx {g.Sum(s => s.Value).ToString(CultureInfo.InvariantCulture)}");
        yield return $"answers by class: {string.Join(", ", classes)}";
        yield return "answers by status: " + string.Join(", ", _byStatus.OrderBy(s => s.Key).Select(s => $"{s.Key.ToString(CultureInfo.InvariantCulture)}: {s.Value.ToString(CultureInfo.InvariantCulture)}"));
        yield return $"no answer: closed by the server {Outcomes(OutcomeKind.ClosedWithoutAnswer).ToString(CultureInfo.InvariantCulture)}, " +
                     $"timed out {Outcomes(OutcomeKind.TimedOut).ToString(CultureInfo.InvariantCulture)}, " +
                     $"closed or reset by the suite (raw) {Outcomes(OutcomeKind.NotAwaited).ToString(CultureInfo.InvariantCulture)}; " +
                     $"refused by HttpClient (not sent, not counted) {Outcomes(OutcomeKind.RefusedByClient).ToString(CultureInfo.InvariantCulture)}";
        foreach (var (family, counts) in _byFamily.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            yield return $"  {family,-7} " + string.Join(", ", counts.OrderBy(c => c.Key, StringComparer.Ordinal)
                .Select(c => $"{c.Key} {c.Value.ToString(CultureInfo.InvariantCulture)}"));
        }
    }

    /// <summary>The one-line JSON summary.</summary>
    public string SummaryLine(int seed, int requested, TimeSpan fuzzTime, TimeSpan total)
    {
        var line = new JsonObject
        {
            ["suite"] = "fuzz",
            ["seed"] = seed,
            ["requested"] = requested,
            ["sent"] = Sent,
            ["byStatus"] = new JsonObject(_byStatus.OrderBy(s => s.Key)
                .Select(s => KeyValuePair.Create(s.Key.ToString(CultureInfo.InvariantCulture), (JsonNode?)s.Value))),
            ["byFamily"] = new JsonObject(_byFamily.OrderBy(f => f.Key, StringComparer.Ordinal).Select(f => KeyValuePair.Create(f.Key,
                (JsonNode?)new JsonObject(f.Value.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => KeyValuePair.Create(c.Key, (JsonNode?)c.Value)))))),
            ["closedWithoutAnswer"] = Outcomes(OutcomeKind.ClosedWithoutAnswer),
            ["timedOut"] = Outcomes(OutcomeKind.TimedOut),
            ["closedBySuite"] = Outcomes(OutcomeKind.NotAwaited),
            ["refusedByClient"] = Outcomes(OutcomeKind.RefusedByClient),
            ["notes"] = new JsonObject(_noteCounts.OrderBy(n => n.Key, StringComparer.Ordinal).Select(n => KeyValuePair.Create(n.Key, (JsonNode?)n.Value))),
            ["fuzzSeconds"] = Math.Round(fuzzTime.TotalSeconds, 1),
            ["requestsPerSecond"] = fuzzTime > TimeSpan.Zero ? Math.Round(Sent / fuzzTime.TotalSeconds, 0) : 0,
            ["durationSeconds"] = Math.Round(total.TotalSeconds, 1),
            ["violations"] = ViolationCount,
            ["violatedChecks"] = new JsonArray([.. ViolatedChecks.Select(c => JsonValue.Create(c))]),
            ["passed"] = ViolationCount == 0,
        };
        return line.ToJsonString();
    }

    private static string OutcomeName(OutcomeKind kind) => kind switch
    {
        OutcomeKind.ClosedWithoutAnswer => "closed",
        OutcomeKind.TimedOut => "timeout",
        _ => "not-awaited",
    };

    private static IEnumerable<string> Group(IEnumerable<(string Check, string Detail)> items, int examples) =>
        items.GroupBy(v => v.Check, StringComparer.Ordinal).SelectMany(group =>
        {
            var lines = group.Take(examples).Select(v => $"VIOLATION {group.Key}: {v.Detail}").ToList();
            int more = group.Count() - examples;
            if (more > 0)
            {
                lines.Add($"VIOLATION {group.Key}: ... and {more.ToString(CultureInfo.InvariantCulture)} more (all of them in violations.log)");
            }

            return lines;
        });
}
