using System.Net;

namespace PollingApi.Testing;

/// <summary>
/// A node's host starts before it has reached and migrated its database (that happens in the background), so a test
/// host waits for <c>/health/ready</c> before its tests send requests that need the database.
/// </summary>
public static class ApiReadiness
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    /// <summary>Polls <c>/health/ready</c> through <paramref name="client"/> until it answers 200.</summary>
    public static async Task WaitAsync(HttpClient client)
    {
        ArgumentNullException.ThrowIfNull(client);
        var ready = new Uri("/health/ready", UriKind.Relative);
        HttpStatusCode? last = null;
        await Eventually.WaitUntilAsync(async () =>
        {
            using var response = await client.GetAsync(ready);
            last = response.StatusCode;
            return response.StatusCode == HttpStatusCode.OK;
        }, Deadline, () => $"/health/ready answered {last}");
    }
}
