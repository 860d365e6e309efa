using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace PollingApi.Operations.Http;

/// <summary>Reads the <c>wait</c> preference of RFC 7240 <c>Prefer</c> headers (e.g. <c>Prefer: respond-async, wait=10</c>).</summary>
internal static class PreferHeader
{
    /// <summary>
    /// The wait asked for, capped by <paramref name="max"/>; zero when none. As RFC 7240 asks, a preference the
    /// server does not understand (a malformed wait) is ignored rather than refused.
    /// </summary>
    public static TimeSpan Wait(IHeaderDictionary headers, TimeSpan max)
    {
        foreach (string? header in headers["Prefer"])
        {
            foreach (string preference in (header ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                // A preference is token[=value] followed by optional ;parameters.
                string[] nameAndValue = preference.Split(';', 2)[0].Split('=', 2, StringSplitOptions.TrimEntries);
                if (nameAndValue.Length == 2 && nameAndValue[0].Equals("wait", StringComparison.OrdinalIgnoreCase)
                    && int.TryParse(nameAndValue[1].Trim('"'), NumberStyles.None, CultureInfo.InvariantCulture, out int seconds))
                {
                    return TimeSpan.FromSeconds(Math.Min(seconds, max.TotalSeconds));
                }
            }
        }

        return TimeSpan.Zero;
    }
}
