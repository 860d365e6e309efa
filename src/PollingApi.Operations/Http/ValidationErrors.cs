using System.Text.Json;
using System.Text.RegularExpressions;
using FluentValidation.Results;

namespace PollingApi.Operations.Http;

/// <summary>
/// A FluentValidation result as the API reports it: errors keyed by each field's JSON name, and messages that name the
/// field that way too ("'durationMs' must not be empty.", not "'Duration Ms' ..."), without changing FluentValidation's
/// process-wide settings.
/// </summary>
internal static class ValidationErrors
{
    // The placeholders FluentValidation fills with display names: the property validated, and the one compared with.
    private static readonly string[] NamePlaceholders = ["PropertyName", "ComparisonProperty"];

    public static Dictionary<string, string[]> ByJsonName(IEnumerable<ValidationFailure> failures) =>
        failures
            .GroupBy(failure => JsonNamingPolicy.CamelCase.ConvertName(failure.PropertyName), StringComparer.Ordinal)
            .ToDictionary(group => group.Key, group => group.Select(Message).ToArray(), StringComparer.Ordinal);

    /// <summary>
    /// The failure's message with each default display name (FluentValidation splits <c>DurationMs</c> into
    /// <c>Duration Ms</c>) replaced by the member's JSON name. A name a rule set itself (<c>WithName</c>) is left as it is.
    /// </summary>
    private static string Message(ValidationFailure failure)
    {
        string message = failure.ErrorMessage;
        if (failure.FormattedMessagePlaceholderValues is not { } values)
        {
            return message;
        }

        foreach (string placeholder in NamePlaceholders)
        {
            if (values.TryGetValue(placeholder, out var shown) && shown is string displayName && displayName.Length > 0
                && JsonNameOfDefault(displayName, placeholder == "PropertyName" ? failure.PropertyName : null) is { } jsonName)
            {
                // Whole words only: "Password" must not change inside "confirmPassword".
                message = Regex.Replace(message, $@"(?<![\p{{L}}\p{{N}}_]){Regex.Escape(displayName)}(?![\p{{L}}\p{{N}}_])", jsonName,
                    RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(100));
            }
        }

        return message;
    }

    /// <summary>
    /// The JSON name behind a default display name, or null when the display name is not the default one (a rule named
    /// its property itself). <paramref name="propertyPath"/> is the failure's path (<c>Lines[0].Sku</c>) when known.
    /// </summary>
    private static string? JsonNameOfDefault(string displayName, string? propertyPath)
    {
        string member = displayName.Replace(" ", "", StringComparison.Ordinal);
        if (propertyPath is not null)
        {
            // The last member of the path, without an indexer: Lines[0].Sku -> Sku, AddressLines[2] -> AddressLines.
            string last = propertyPath[(propertyPath.LastIndexOf('.') + 1)..];
            int indexer = last.IndexOf('[', StringComparison.Ordinal);
            string pathMember = indexer < 0 ? last : last[..indexer];
            if (!string.Equals(member, pathMember, StringComparison.Ordinal))
            {
                return null;
            }
        }

        return member.Length > 0 && char.IsUpper(member[0]) ? JsonNamingPolicy.CamelCase.ConvertName(member) : null;
    }
}
