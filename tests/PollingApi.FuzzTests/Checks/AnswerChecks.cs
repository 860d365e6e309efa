using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using PollingApi.FuzzTests.Generation;
using PollingApi.FuzzTests.Sending;

namespace PollingApi.FuzzTests.Checks;

/// <summary>
/// The checks every answer gets: never a 5xx; a 4xx with a body is an RFC 9457 problem with type, title and status;
/// no error shows exception text; and what the request's <see cref="Expectation"/> asks for.
/// </summary>
internal static partial class AnswerChecks
{
    public const string No5xx = "no-5xx";
    public const string ErrorsAreProblems = "4xx-body-is-a-problem";
    public const string NoExceptionText = "no-exception-text";
    public const string OtherTenantSeesNothing = "other-tenant-sees-nothing";
    public const string NoAccessWithoutKey = "no-access-without-a-valid-key";
    public const string AnsweredInTime = "answered-in-time";

    private const string ProblemMediaType = "application/problem+json";

    /// <summary>What the contract lists for every problem besides type, title and status.</summary>
    private static readonly string[] ContractMembers = ["detail", "instance", "traceId"];

    public static void Check(FuzzRequest request, FuzzOutcome outcome, FuzzReport report)
    {
        if (outcome.Kind == OutcomeKind.TimedOut)
        {
            // A raw request the server waits on can end without an answer; an HttpClient request is complete and must be answered.
            if (request.Raw is null)
            {
                report.Violation(AnsweredInTime, $"{request.Describe()} => {outcome.Detail}");
            }
            else
            {
                report.Note("raw request not answered before the suite's read deadline", $"{request.Describe()} => {outcome.Detail}");
            }
        }

        if (outcome.Kind == OutcomeKind.ClosedWithoutAnswer)
        {
            report.Note(request.Raw is null ? "connection closed without an answer" : "raw: connection closed without an answer",
                $"{request.Describe()} => {outcome.Detail}");
        }

        foreach (var answer in outcome.Answers)
        {
            CheckAnswer(request, answer, report);
        }

        if (outcome.Answers.Count > 0)
        {
            CheckExpectation(request, outcome.Answers[0], report);
        }

        foreach (var answer in outcome.Answers)
        {
            string body = Encoding.UTF8.GetString(answer.Body);
            if (request.MustNotReveal.FirstOrDefault(id => body.Contains(id, StringComparison.OrdinalIgnoreCase)) is { } revealed)
            {
                report.Violation(OtherTenantSeesNothing, $"{request.Describe()} => tenant A's {revealed} is in the answer: {Describe(answer)}");
            }
        }
    }

    /// <summary>Why <paramref name="answer"/> is not a well-formed problem; null when it is one.</summary>
    public static string? ProblemDefect(FuzzAnswer answer)
    {
        if (!string.Equals(answer.MediaType, ProblemMediaType, StringComparison.OrdinalIgnoreCase))
        {
            return $"Content-Type is {answer.MediaType ?? "missing"}, not {ProblemMediaType}";
        }

        try
        {
            using var json = JsonDocument.Parse(answer.Body);
            var root = json.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return "the body is not a JSON object";
            }

            var missing = new List<string>();
            foreach (string member in new[] { "type", "title" })
            {
                if (!root.TryGetProperty(member, out var value) || value.ValueKind != JsonValueKind.String || value.GetString() is not { Length: > 0 })
                {
                    missing.Add(member);
                }
            }

            if (!root.TryGetProperty("status", out var status) || status.ValueKind != JsonValueKind.Number)
            {
                missing.Add("status");
            }
            else if (!status.TryGetInt32(out int declared) || declared != answer.Status)
            {
                return $"its status member is {status.GetRawText()}, the answer's status {answer.Status}";
            }

            return missing.Count == 0 ? null : $"no {string.Join(", ", missing)}";
        }
        catch (JsonException ex)
        {
            return $"the body is not JSON ({ex.Message})";
        }
    }

    /// <summary>Which of detail, instance and traceId a well-formed problem lacks.</summary>
    private static List<string> MissingContractMembers(FuzzAnswer answer)
    {
        using var json = JsonDocument.Parse(answer.Body);
        return [.. ContractMembers.Where(member => !json.RootElement.TryGetProperty(member, out _))];
    }

    public static string Describe(FuzzAnswer answer) =>
        $"{answer.Status} {answer.MediaType ?? "(no Content-Type)"} {FuzzRequest.Escape(answer.Body, 1500)}";

    private static void CheckAnswer(FuzzRequest request, FuzzAnswer answer, FuzzReport report)
    {
        if (answer.Status >= 500)
        {
            report.Violation(No5xx, $"{request.Describe()} => {Describe(answer)}");
        }

        if (answer.Status is >= 400 and < 500)
        {
            if (answer.Body.Length == 0)
            {
                // An answer to HEAD has no body by definition.
                if (request.Method != "HEAD")
                {
                    report.Note($"{answer.Status} without a body", request.Describe());
                }
            }
            else if (ProblemDefect(answer) is { } defect)
            {
                report.Violation(ErrorsAreProblems, $"{request.Describe()} => {defect}: {Describe(answer)}");
            }
            else if (MissingContractMembers(answer) is { Count: > 0 } missing)
            {
                // The contract lists these too; the check above holds a problem to what a client needs to branch on.
                report.Note($"problem without {string.Join(", ", missing)}", $"{request.Describe()} => {Describe(answer)}");
            }
        }

        if (answer.Status >= 400 && answer.Body.Length > 0 && StackTraceText().IsMatch(Encoding.UTF8.GetString(answer.Body)))
        {
            report.Violation(NoExceptionText, $"{request.Describe()} => {Describe(answer)}");
        }
    }

    private static void CheckExpectation(FuzzRequest request, FuzzAnswer answer, FuzzReport report)
    {
        switch (request.Expect)
        {
            // Anything that tells tenant B the operation exists: a success, a redirect, a state conflict, "gone".
            case Expectation.NotFoundForOtherTenant when answer.Status is < 400 or 409 or 410:
                report.Violation(OtherTenantSeesNothing, $"{request.Describe()} => expected 404, got {Describe(answer)}");
                break;
            case Expectation.RefusedWithoutValidKey when answer.Status < 400:
                report.Violation(NoAccessWithoutKey, $"{request.Describe()} => expected 401 (or another refusal), got {Describe(answer)}");
                break;
        }
    }

    /// <summary>A .NET exception's type name or a stack frame: text that must never reach a client.</summary>
    [GeneratedRegex(@"\b(?:System|Npgsql|Microsoft)\.[\w.]*Exception\b|\bat [\w.`<>\[\]]+\([^)]*\)(?: in |\r?\n)|--- End of (?:inner exception )?stack trace", RegexOptions.CultureInvariant)]
    private static partial Regex StackTraceText();
}
