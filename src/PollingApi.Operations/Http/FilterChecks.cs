using System.Globalization;
using PollingApi.Operations.Security;

namespace PollingApi.Operations.Http;

/// <summary>
/// The checks of the filters that the operations list and the admin endpoints share, so that a bad value is refused with
/// the same message, under the same field name, wherever it is sent.
/// </summary>
internal static class FilterChecks
{
    /// <summary>Adds an error to <paramref name="errors"/> for each given filter that is invalid; a null filter is not given.</summary>
    public static void Check(string? kind, string? errorType, string? tenant, Dictionary<string, string[]> errors)
    {
        if (kind is { Length: 0 or > 200 } || (kind is not null && kind.Any(char.IsControl)))
        {
            errors["kind"] = ["'kind' must be 1 to 200 characters, none of them a control character."];
        }

        if (errorType is { Length: 0 or > 200 } || (errorType is not null && errorType.Any(char.IsControl)))
        {
            errors["errorType"] = ["'errorType' must be 1 to 200 characters, none of them a control character."];
        }

        if (tenant is not null && !CallerClaims.IsValidTenant(tenant))
        {
            errors["tenant"] = ["'tenant' must be 1 to 64 letters, digits, '.', '_', ':' or '-'."];
        }
    }

    /// <summary>An RFC 3339 instant as UTC; null when not given, or (with an error under <paramref name="name"/>) when invalid.</summary>
    public static DateTime? ParseTime(string? value, string name, Dictionary<string, string[]> errors)
    {
        if (value is null)
        {
            return null;
        }

        // The parser ignores trailing NULs; a value with any control character is refused before it gets there.
        if (value.Length <= 40 && !value.Any(char.IsControl)
            && DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed))
        {
            return parsed.UtcDateTime;
        }

        errors[name] = [$"'{name}' must be an RFC 3339 date-time such as 2026-11-27T10:00:00Z."];
        return null;
    }
}
