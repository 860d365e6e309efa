using PollingApi.FuzzTests.Setup;

namespace PollingApi.FuzzTests.Checks;

/// <summary>
/// After the fuzz, the API must still serve what a client does every day: tenant A submits a short sleep (202) and
/// polls its Location until it succeeded; tenant B cannot see or cancel it (404); a request without a key is 401.
/// </summary>
internal static class NormalFlow
{
    public const string Name = "normal-flow-after-fuzz";
    public const string TenantIsolation = "other-tenant-gets-404-after-fuzz";
    public const string KeyRequired = "no-key-gets-401-after-fuzz";

    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    public static async Task CheckAsync(ApiCalls api, string keyA, string keyB, FuzzReport report, CancellationToken cancellationToken)
    {
        var submitted = await api.SubmitAsync("/v1/diagnostics/sleep", """{"durationMs":10}""", keyA, cancellationToken);
        if (submitted is not { Status: 202, Location: { } relativeLocation })
        {
            report.Violation(Name, $"POST /v1/diagnostics/sleep {{\"durationMs\":10}} with tenant A's key was answered {submitted}, not 202 with a Location");
            return;
        }

        var location = new Uri(api.BaseAddress, relativeLocation);
        var done = await api.PollUntilDoneAsync(location, keyA, Deadline, cancellationToken);
        if (done.Status != 200 || done.Member("status") != "succeeded")
        {
            report.Violation(Name, $"polling {location} with tenant A's key for {Deadline.TotalSeconds:0} s ended with {done}, not 200 succeeded");
        }

        var seenByB = await api.SendAsync(HttpMethod.Get, location, keyB, null, cancellationToken);
        if (seenByB.Status != 404)
        {
            report.Violation(TenantIsolation, $"GET {location} (tenant A's operation) with tenant B's key was answered {seenByB}, not 404");
        }

        var cancelledByB = await api.SendAsync(HttpMethod.Post, new Uri(location.AbsoluteUri + "/cancel"), keyB, null, cancellationToken);
        if (cancelledByB.Status != 404)
        {
            report.Violation(TenantIsolation, $"POST {location}/cancel (tenant A's operation) with tenant B's key was answered {cancelledByB}, not 404");
        }

        var keyless = await api.SendAsync(HttpMethod.Get, location, null, null, cancellationToken);
        if (keyless.Status != 401)
        {
            report.Violation(KeyRequired, $"GET {location} without X-Api-Key was answered {keyless}, not 401");
        }
    }
}
