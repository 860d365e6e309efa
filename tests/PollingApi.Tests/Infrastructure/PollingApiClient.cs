using System.Net;
using System.Text;

namespace PollingApi.Tests.Infrastructure;

/// <summary>The requests the tests make, each returning an <see cref="ApiResponse"/>.</summary>
public static class PollingApiClient
{
    public const string SleepRoute = "/v1/diagnostics/sleep";

    public static Task<ApiResponse> SubmitSleepAsync(this HttpClient client, string json) =>
        client.SendAsync(HttpMethod.Post, SleepRoute, JsonBody(json));

    public static Task<ApiResponse> FetchAsync(this HttpClient client, Uri uri) =>
        client.SendAsync(HttpMethod.Get, uri.ToString(), null);

    public static Task<ApiResponse> FetchAsync(this HttpClient client, string path) =>
        client.SendAsync(HttpMethod.Get, path, null);

    public static async Task<ApiResponse> SendAsync(this HttpClient client, HttpMethod method, string uri, HttpContent? content,
        Action<HttpRequestMessage>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        using var request = new HttpRequestMessage(method, new Uri(uri, UriKind.RelativeOrAbsolute)) { Content = content };
        configure?.Invoke(request);
        using var response = await client.SendAsync(request);
        return await ApiResponse.ReadAsync(response);
    }

    public static StringContent JsonBody(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>
    /// Polls an operation until it is done, checking on the way that every answer before that is a
    /// <c>202</c> with <c>Retry-After</c>. Returns the final answer.
    /// </summary>
    public static async Task<ApiResponse> PollUntilDoneAsync(this HttpClient client, Uri location, TimeSpan deadline)
    {
        ApiResponse? last = null;
        await Eventually.WaitUntilAsync(async () =>
        {
            last = await client.FetchAsync(location);
            if (last.Status == HttpStatusCode.OK)
            {
                return true;
            }

            Assert.True(last.Status == HttpStatusCode.Accepted, $"Expected 202 while not done, got {last}");
            Assert.False(last.Json.GetProperty("done").GetBoolean());
            Assert.True(RetryAfter.Seconds(last) >= 1);
            return false;
        }, deadline, () => last?.ToString() ?? "(no answer)");

        Assert.True(last!.Json.GetProperty("done").GetBoolean(), $"200 must mean done: {last}");
        return last;
    }
}

public static class RetryAfter
{
    /// <summary>The <c>Retry-After</c> header as whole seconds; fails when it is absent, not an integer or out of bounds.</summary>
    public static int Seconds(ApiResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        string? value = response.Header("Retry-After");
        Assert.True(value is not null, $"Expected a Retry-After header: {response}");
        Assert.Matches("^[0-9]+$", value);
        int seconds = int.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
        // Never 0 and never absurd: within the default Operations:RetryAfterMin..RetryAfterMax.
        Assert.InRange(seconds, 1, 30);
        return seconds;
    }
}
