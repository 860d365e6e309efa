using System.Diagnostics;
using PollingApi.ClientTests.Generated;

namespace PollingApi.ClientTests.Infrastructure;

/// <summary>Polls an operation through the generated client, as an SDK user would, until a condition holds or a deadline passes.</summary>
public static class OperationPolling
{
    private static readonly TimeSpan Pause = TimeSpan.FromMilliseconds(50);

    /// <summary>Polls until the operation is done (succeeded, failed or cancelled).</summary>
    public static Task<OperationResource> PollUntilDoneAsync(this IPollingApiClient client, Guid id, TimeSpan deadline) =>
        client.PollUntilAsync(id, operation => operation.Done, deadline);

    /// <summary>Polls until <paramref name="condition"/> holds for the operation; throws <see cref="TimeoutException"/> at the deadline.</summary>
    public static async Task<OperationResource> PollUntilAsync(this IPollingApiClient client, Guid id,
        Func<OperationResource, bool> condition, TimeSpan deadline)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(condition);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var operation = await client.GetOperationAsync(id);
            if (condition(operation))
            {
                return operation;
            }

            if (clock.Elapsed > deadline)
            {
                throw new TimeoutException($"Operation {id} did not reach the expected state within {deadline.TotalSeconds:0.###} s: " +
                                           $"last seen {operation.Status}, {operation.Attempts} attempts, done {operation.Done}.");
            }

            await Task.Delay(Pause);
        }
    }
}
