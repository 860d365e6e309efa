using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using PollingApi.Operations.Lifecycle;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>The engine's metrics change by what happened, and /metrics serves them in Prometheus text.</summary>
public sealed class MetricsTests(PollingApiFactory factory) : IClassFixture<PollingApiFactory>
{
    private const string Kind = "diagnostics.sleep";
    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task EachSucceededOperationCountsItsSubmitItsAttemptAndItsCompletion()
    {
        using var metrics = new RecordedMetrics(factory.Services);

        for (int i = 0; i < 3; i++)
        {
            var done = await WaitAsync("""{"durationMs": 1}""");
            Assert.Equal("succeeded", done.Json.GetProperty("status").GetString());
        }

        await Eventually.WaitUntilAsync(() => Task.FromResult(
                metrics.Sum("pollingapi.operations.completed", ("kind", Kind), ("status", "succeeded")) == 3),
            TimeSpan.FromSeconds(10), () => "completed{succeeded} did not reach 3");
        Assert.Equal(3, metrics.Sum("pollingapi.operations.submitted", ("kind", Kind)));
        Assert.Equal(3, metrics.Sum("pollingapi.operation.attempts", ("kind", Kind), ("outcome", "succeeded")));
        Assert.Equal(3, metrics.Count("pollingapi.operation.attempt.duration", ("kind", Kind), ("outcome", "succeeded")));
        Assert.Equal(3, metrics.Count("pollingapi.operation.completion.duration", ("kind", Kind), ("status", "succeeded")));
        Assert.Equal(0, metrics.Sum("pollingapi.operation.attempts", ("outcome", "transient_failure")));
        Assert.Equal(3, metrics.Sum("pollingapi.group_commit.batch_size"));
    }

    [Fact]
    public async Task FailuresAreCountedByHowTheAttemptEnded()
    {
        using var metrics = new RecordedMetrics(factory.Services);

        var permanent = await WaitAsync("""{"durationMs": 1, "failPermanently": true}""");
        var retried = await WaitAsync("""{"durationMs": 1, "failTimes": 1}""");

        Assert.Equal("failed", permanent.Json.GetProperty("status").GetString());
        Assert.Equal("succeeded", retried.Json.GetProperty("status").GetString());
        await Eventually.WaitUntilAsync(() => Task.FromResult(
                metrics.Sum("pollingapi.operations.completed", ("kind", Kind), ("status", "succeeded")) == 1),
            TimeSpan.FromSeconds(10));
        Assert.Equal(1, metrics.Sum("pollingapi.operation.attempts", ("kind", Kind), ("outcome", "permanent_failure")));
        Assert.Equal(1, metrics.Sum("pollingapi.operation.attempts", ("kind", Kind), ("outcome", "transient_failure")));
        Assert.Equal(1, metrics.Sum("pollingapi.operation.attempts", ("kind", Kind), ("outcome", "succeeded")));
        Assert.Equal(1, metrics.Sum("pollingapi.operations.completed", ("kind", Kind), ("status", "failed")));
        Assert.Equal(2, metrics.Sum("pollingapi.operations.submitted", ("kind", Kind)));
    }

    [Fact]
    public async Task AnIdempotentReplayIsNotCountedAsASubmit()
    {
        using var metrics = new RecordedMetrics(factory.Services);
        string key = $"replay-{Guid.NewGuid()}";

        for (int i = 0; i < 2; i++)
        {
            // Waited for, so that its completion is not counted by the next test's recorder.
            await _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody("""{"durationMs": 1}"""),
                request =>
                {
                    request.Headers.Add("Idempotency-Key", key);
                    request.Headers.TryAddWithoutValidation("Prefer", "wait=30");
                });
        }

        Assert.Equal(1, metrics.Sum("pollingapi.operations.submitted", ("kind", Kind)));
    }

    [Fact]
    public async Task TheMetricsEndpointServesTheSeriesInPrometheusTextToAnonymousScrapers()
    {
        await WaitAsync("""{"durationMs": 1}""");

        ApiResponse? scrape = null;
        await Eventually.WaitUntilAsync(async () =>
        {
            scrape = await factory.CreateClient().FetchAsync("/metrics");
            return scrape.Body.Contains("pollingapi_operations_completed_total{", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(10), () => $"the scrape lacks the completed counter: {scrape}");

        Assert.Equal(HttpStatusCode.OK, scrape!.Status);
        Assert.Equal("text/plain", scrape.MediaType);
        Assert.Contains("# TYPE pollingapi_operations_submitted_total counter", scrape.Body, StringComparison.Ordinal);
        Assert.Contains("# TYPE pollingapi_operation_attempt_duration_seconds histogram", scrape.Body, StringComparison.Ordinal);
        Assert.Contains("# TYPE pollingapi_operations_queued gauge", scrape.Body, StringComparison.Ordinal);
        Assert.Contains("pollingapi_operations_submitted_total{otel_scope_name=\"PollingApi.Operations\",kind=\"diagnostics.sleep\"}",
            scrape.Body, StringComparison.Ordinal);
        Assert.Contains("# TYPE http_server_request_duration_seconds histogram", scrape.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnAttemptContinuesTheTraceOfTheRequestThatSubmittedIt()
    {
        var traceId = ActivityTraceId.CreateRandom();
        var attempts = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is "PollingApi.Operations" or "Microsoft.AspNetCore",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                if (activity.Source.Name == "PollingApi.Operations")
                {
                    lock (attempts)
                    {
                        attempts.Add(activity);
                    }
                }
            },
        };
        ActivitySource.AddActivityListener(listener);

        var done = await _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody("""{"durationMs": 1}"""),
            request =>
            {
                request.Headers.Add("traceparent", $"00-{traceId}-{ActivitySpanId.CreateRandom()}-01");
                request.Headers.TryAddWithoutValidation("Prefer", "wait=30");
            });
        var id = done.Json.GetProperty("id").GetGuid();

        Activity? attempt = null;
        await Eventually.WaitUntilAsync(() =>
        {
            lock (attempts)
            {
                attempt = attempts.FirstOrDefault(a => Equals(a.GetTagItem("pollingapi.operation.id"), id));
            }

            return Task.FromResult(attempt is not null);
        }, TimeSpan.FromSeconds(10), () => "no attempt span for the operation");
        Assert.Equal($"process {Kind}", attempt!.DisplayName);
        Assert.Equal(ActivityKind.Consumer, attempt.Kind);
        Assert.Equal(traceId, attempt.TraceId);
        string? stored = await factory.Operations.FindTraceParentAsync(id);
        Assert.NotNull(stored);
        Assert.Equal(stored, $"00-{attempt.TraceId}-{attempt.ParentSpanId}-01");
    }

    private async Task<ApiResponse> WaitAsync(string json)
    {
        var response = await _client.SendAsync(HttpMethod.Post, PollingApiClient.SleepRoute, PollingApiClient.JsonBody(json),
            request => request.Headers.TryAddWithoutValidation("Prefer", "wait=30"));
        Assert.True(response.Status == HttpStatusCode.OK, $"Expected the operation to finish within the wait: {response}");
        return response;
    }
}

/// <summary>The queue gauges, on a node that runs no worker (so submitted operations stay pending), and a pending cancel.</summary>
public sealed class QueueMetricsTests(ApiOnlyPollingApiFactory factory) : IClassFixture<ApiOnlyPollingApiFactory>
{
    [Fact]
    public async Task PendingOperationsShowInTheQueueGaugesAndACancelCountsAsCompleted()
    {
        using var metrics = new RecordedMetrics(factory.Services);
        var client = factory.CreateClient();
        var first = (await client.SubmitSleepAsync("""{"durationMs": 1}""")).Json.GetProperty("id").GetGuid();
        await client.SubmitSleepAsync("""{"durationMs": 1}""");

        await ActivatorUtilities.CreateInstance<StatisticsRefreshJob>(factory.Services).RefreshAsync(CancellationToken.None);
        metrics.Observe();
        double pending = metrics.Last("pollingapi.operations.queued", ("kind", "diagnostics.sleep"), ("status", "pending"));
        double oldest = metrics.Last("pollingapi.operations.oldest_pending_age", ("kind", "diagnostics.sleep"));
        var cancel = await client.SendAsync(HttpMethod.Post, $"/v1/operations/{first}/cancel", null);

        Assert.Equal(await factory.Operations.CountAsync(), pending);
        Assert.True(oldest >= 0, $"oldest pending age {oldest}");
        Assert.Equal(0, metrics.Last("pollingapi.operations.queued", ("kind", "diagnostics.sleep"), ("status", "running")));
        Assert.Equal(HttpStatusCode.OK, cancel.Status);
        Assert.Equal(1, metrics.Sum("pollingapi.operations.completed", ("kind", "diagnostics.sleep"), ("status", "cancelled")));
    }
}

/// <summary><c>Metrics:RequireAuthorization</c> makes /metrics an admin endpoint.</summary>
public sealed class ProtectedMetricsTests(ProtectedMetricsFactory factory) : IClassFixture<ProtectedMetricsFactory>
{
    [Fact]
    public async Task WithRequireAuthorizationOnlyAnAdminKeyMayScrape()
    {
        var anonymous = await factory.CreateClient().FetchAsync("/metrics");
        var reader = await factory.CreateClient(await factory.CreateApiKeyAsync("ops", "operations:read")).FetchAsync("/metrics");
        var admin = await factory.CreateClient(await factory.CreateApiKeyAsync("ops", "admin")).FetchAsync("/metrics");

        ProblemAssert.IsProblem(anonymous, HttpStatusCode.Unauthorized, "urn:pollingapi:problem:unauthorized", "/metrics");
        ProblemAssert.IsProblem(reader, HttpStatusCode.Forbidden, "urn:pollingapi:problem:forbidden", "/metrics");
        Assert.Equal(HttpStatusCode.OK, admin.Status);
        Assert.Contains("pollingapi_", admin.Body, StringComparison.Ordinal);
    }
}

public sealed class ProtectedMetricsFactory : SecuredPollingApiFactory
{
    protected override IEnumerable<(string Key, string Value)> MoreSettings => [("Metrics:RequireAuthorization", "true")];
}
