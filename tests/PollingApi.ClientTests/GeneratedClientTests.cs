using PollingApi.ClientTests.Generated;
using PollingApi.ClientTests.Infrastructure;

namespace PollingApi.ClientTests;

/// <summary>
/// A full round trip through the C# client that NSwag generates from the committed openapi/v1.json: what an SDK user
/// gets. Submitting answers 202 without an exception, polling gets the operation as its command's own type, and a
/// succeeded operation's result is typed.
/// </summary>
public sealed class GeneratedClientTests(ClientTestsFactory factory) : IClassFixture<ClientTestsFactory>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private readonly PollingApiClient _client = factory.CreatePollingApiClient();

    [Fact]
    public async Task ASubmittedSleepIsPolledUntilItSucceedsAndItsResultIsTyped()
    {
        var submitted = await _client.SubmitDiagnosticsSleepAsync(new SleepRequest { DurationMs = 50 });

        Assert.NotEqual(Guid.Empty, submitted.Id);
        Assert.Contains(submitted.Status, new[] { OperationState.Pending, OperationState.Running });
        Assert.False(submitted.Done);
        Assert.Null(submitted.Result);
        Assert.EndsWith($"/v1/operations/{submitted.Id}", submitted.Links.Self, StringComparison.Ordinal);

        var done = await _client.PollUntilDoneAsync(submitted.Id, Deadline);

        var sleep = Assert.IsType<DiagnosticsSleepOperation>(done);
        Assert.Equal(submitted.Id, sleep.Id);
        Assert.Equal(OperationState.Succeeded, sleep.Status);
        Assert.True(sleep.Done);
        Assert.NotNull(sleep.Result);
        Assert.Equal(50, sleep.Result.SleptMs);
        Assert.Equal(1, sleep.Result.Attempt);
        Assert.Null(sleep.Error);
        Assert.Equal(1, sleep.Attempts);
        Assert.NotNull(sleep.CompletedAt);
        Assert.True(sleep.CompletedAt >= sleep.CreatedAt);
    }

    [Fact]
    public async Task AnOperationThatFailsPermanentlyIsPolledUntilFailedWithItsProblemType()
    {
        var submitted = await _client.SubmitDiagnosticsSleepAsync(new SleepRequest { DurationMs = 0, FailPermanently = true });

        var done = await _client.PollUntilDoneAsync(submitted.Id, Deadline);

        var sleep = Assert.IsType<DiagnosticsSleepOperation>(done);
        Assert.Equal(OperationState.Failed, sleep.Status);
        Assert.True(sleep.Done);
        Assert.Null(sleep.Result);
        Assert.NotNull(sleep.Error);
        Assert.Equal("urn:pollingapi:problem:diagnostics-permanent-failure", sleep.Error.Type);
        Assert.Equal("The sleep was asked to fail permanently.", sleep.Error.Title);
        Assert.Equal(1, sleep.Attempts);
    }

    [Fact]
    public async Task AnInvalidCommandSurfacesAsTheClientsExceptionWithStatus400AndTheValidationProblem()
    {
        var exception = await Assert.ThrowsAsync<PollingApiException<HttpValidationProblemDetails>>(
            () => _client.SubmitDiagnosticsSleepAsync(new SleepRequest { DurationMs = -1 }));

        Assert.Equal(400, exception.StatusCode);
        var problem = exception.Result;
        Assert.Equal("urn:pollingapi:problem:validation-failed", problem.Type);
        Assert.Equal(400, problem.Status);
        Assert.NotNull(problem.Errors);
        var messages = Assert.Contains("durationMs", problem.Errors);
        Assert.Contains(messages, message => message.Contains("durationMs", StringComparison.Ordinal));
        Assert.Contains("traceId", problem.AdditionalProperties.Keys);
    }

    [Fact]
    public async Task ARunningSleepCancelledThroughTheClientEndsCancelledLongBeforeItWouldHaveWoken()
    {
        var submitted = await _client.SubmitDiagnosticsSleepAsync(new SleepRequest { DurationMs = 60_000 });
        await _client.PollUntilAsync(submitted.Id, operation => operation.Status == OperationState.Running, Deadline);

        var cancelling = await _client.CancelOperationAsync(submitted.Id);

        Assert.Equal(submitted.Id, cancelling.Id);
        Assert.True(cancelling.CancelRequested || cancelling.Status == OperationState.Cancelled,
            $"The cancel answer shows status {cancelling.Status} without cancelRequested.");
        // The handler sleeps 60 s: ending within the deadline means its cancellation token fired.
        var done = await _client.PollUntilDoneAsync(submitted.Id, Deadline);
        var sleep = Assert.IsType<DiagnosticsSleepOperation>(done);
        Assert.Equal(OperationState.Cancelled, sleep.Status);
        Assert.True(sleep.Done);
        Assert.Null(sleep.Result);
        Assert.NotNull(sleep.Error);
        Assert.Equal("urn:pollingapi:problem:operation-cancelled", sleep.Error.Type);
        Assert.True(sleep.CompletedAt - sleep.CreatedAt < TimeSpan.FromSeconds(30),
            $"Cancelled at {sleep.CompletedAt:O}, created at {sleep.CreatedAt:O}.");
    }
}
