using System.Text.Json;
using FluentValidation.Results;

namespace PollingApi.Operations.Http;

/// <summary>
/// A FluentValidation result as the API reports it: errors keyed by each field's JSON name, and messages that name the
/// field that way too ("'durationMs' must not be empty.", not "'Duration Ms' ..."), without changing FluentValidation's
/// process-wide settings.
/// </summary>
internal static class ValidationErrors
{
    public static Dictionary<string, string[]> ByJsonName(IEnumerable<ValidationFailure> failures) =>
        failures
            .GroupBy(failure => JsonNamingPolicy.CamelCase.ConvertName(failure.PropertyName), StringComparer.Ordinal)
            .ToDictionary(group => group.Key, group => group.Select(Message).ToArray(), StringComparer.Ordinal);

    private static string Message(ValidationFailure failure)
    {
        // The display name FluentValidation put into the message (it splits "DurationMs" into "Duration Ms").
        if (failure.FormattedMessagePlaceholderValues?.TryGetValue("PropertyName", out var shown) == true && shown is string displayName
            && displayName.Length > 0)
        {
            string member = failure.PropertyName[(failure.PropertyName.LastIndexOf('.') + 1)..];
            return failure.ErrorMessage.Replace($"'{displayName}'", $"'{JsonNamingPolicy.CamelCase.ConvertName(member)}'", StringComparison.Ordinal);
        }

        return failure.ErrorMessage;
    }
}
