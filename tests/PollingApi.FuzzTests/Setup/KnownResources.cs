using System.Globalization;

namespace PollingApi.FuzzTests.Setup;

/// <summary>Real resources of tenant A that the fuzz aims at: operations in each finished state, and two accounts.</summary>
internal sealed record KnownResources(IReadOnlyList<Guid> Operations, Guid AccountA, Guid AccountB)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Submits, with tenant A's key, a sleep that succeeds, one that fails, one that is cancelled and two account
    /// openings, and waits until all are done. Throws <see cref="InvalidOperationException"/> when the API does not
    /// do that: nothing is worth fuzzing then.
    /// </summary>
    public static async Task<KnownResources> CreateAsync(ApiCalls api, string key, CancellationToken cancellationToken)
    {
        var succeeded = await SubmitAsync(api, "/v1/diagnostics/sleep", """{"durationMs":0}""", key, cancellationToken);
        var failed = await SubmitAsync(api, "/v1/diagnostics/sleep", """{"durationMs":0,"failPermanently":true}""", key, cancellationToken);
        var cancelled = await SubmitAsync(api, "/v1/diagnostics/sleep", """{"durationMs":5000}""", key, cancellationToken);
        var cancel = await api.SendAsync(HttpMethod.Post, new Uri(cancelled.AbsoluteUri + "/cancel"), key, null, cancellationToken);
        if (cancel.Status is not (200 or 202))
        {
            throw new InvalidOperationException($"Cancelling {cancelled} was answered {cancel}.");
        }

        var accountA = await SubmitAsync(api, "/v1/accounts", """{"currency":"EUR","openingBalance":1000000}""", key, cancellationToken);
        var accountB = await SubmitAsync(api, "/v1/accounts", """{"currency":"EUR","openingBalance":1000000}""", key, cancellationToken);

        var operations = new List<Guid>();
        var accounts = new List<Guid>();
        foreach (var (location, expected) in new[]
                 {
                     (succeeded, "succeeded"), (failed, "failed"), (cancelled, "cancelled"), (accountA, "succeeded"), (accountB, "succeeded"),
                 })
        {
            var done = await api.PollUntilDoneAsync(location, key, Deadline, cancellationToken);
            if (done.Status != 200 || done.Member("status") != expected)
            {
                throw new InvalidOperationException($"{location} should have ended {expected}; it was answered {done}.");
            }

            operations.Add(Guid.Parse(done.Member("id")!, CultureInfo.InvariantCulture));
            if (done.Member("result.accountId") is { } account)
            {
                accounts.Add(Guid.Parse(account, CultureInfo.InvariantCulture));
            }
        }

        return new KnownResources(operations, accounts[0], accounts[1]);
    }

    private static async Task<Uri> SubmitAsync(ApiCalls api, string path, string json, string key, CancellationToken cancellationToken)
    {
        var reply = await api.SubmitAsync(path, json, key, cancellationToken);
        return reply is { Status: 202, Location: { } location }
            ? new Uri(api.BaseAddress, location)
            : throw new InvalidOperationException($"POST {path} {json} was answered {reply}, not 202 with a Location.");
    }
}
