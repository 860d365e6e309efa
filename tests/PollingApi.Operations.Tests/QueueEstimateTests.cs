using PollingApi.Operations.Lifecycle;
using PollingApi.Operations.Model;
using PollingApi.Operations.Storage;
using PollingApi.Operations.Worker;

namespace PollingApi.Operations.Tests;

/// <summary>The arithmetic of <see cref="OperationQueueEstimator.Estimate"/>: reasons, positions and expected starts.</summary>
public sealed class QueueEstimateTests
{
    private const string Kind = "diagnostics.sleep";
    private static readonly DateTime Now = new(2026, 12, 1, 8, 0, 0, DateTimeKind.Utc);
    private static readonly KindSettings Defaults = KindSettings.Defaults(Kind);

    /// <summary>Nine due operations that fell due one second apart, the last at <see cref="Now"/>, all of priority 5.</summary>
    private static KindStatistics Backlog(double completionsPerSecond = 2, long running = 1, double? meanRunSeconds = 1) => new()
    {
        Kind = Kind,
        Pending = 9,
        PendingAll = 9,
        Running = running,
        OldestDueAt = Now.AddSeconds(-8),
        FirstDueKey = Now.AddSeconds(-8).AddMinutes(-5),
        LastDueKey = Now.AddMinutes(-5),
        MeanRunSeconds = meanRunSeconds,
        CompletionsPerSecond = completionsPerSecond > 0 ? completionsPerSecond : null,
    };

    private static OperationRow Pending(DateTime nextAttemptAt, int attempts = 0, short priority = 5, DateTime? updatedAt = null) => new()
    {
        Id = Guid.CreateVersion7(),
        Owner = "dev",
        Kind = Kind,
        Status = "pending",
        Attempts = attempts,
        MaxAttempts = 5,
        NextAttemptAt = nextAttemptAt,
        CreatedAt = updatedAt ?? nextAttemptAt,
        UpdatedAt = updatedAt ?? nextAttemptAt,
        Priority = priority,
    };

    private static OperationQueue Estimate(OperationRow row, KindStatistics? kind, KindSettings? settings = null, DateTime? readAt = null,
        int? tenantCap = null, long tenantRunning = 0) =>
        OperationQueueEstimator.Estimate(row, Now, readAt ?? Now, kind, settings ?? Defaults, tenantCap, tenantRunning);

    [Fact]
    public void TheLastOfADueBacklogHasEveryOtherAheadAndStartsOnceTheRateHasWorkedThemOff()
    {
        var queue = Estimate(Pending(Now), Backlog(completionsPerSecond: 2));

        Assert.Equal(new OperationQueue(8, OperationQueueReason.Queued, Now.AddSeconds(4)), queue);
    }

    [Fact]
    public void AnOperationHalfwayThroughTheBacklogHasHalfOfTheOthersAhead()
    {
        var queue = Estimate(Pending(Now.AddSeconds(-4)), Backlog(completionsPerSecond: 2));

        Assert.Equal(new OperationQueue(4, OperationQueueReason.Queued, Now.AddSeconds(2)), queue);
    }

    [Fact]
    public void TheFirstOfTheBacklogHasNothingAheadAndStartsNow()
    {
        var queue = Estimate(Pending(Now.AddSeconds(-8)), Backlog(completionsPerSecond: 2));

        Assert.Equal(new OperationQueue(0, OperationQueueReason.Queued, Now), queue);
    }

    [Fact]
    public void AnOperationStoredAfterTheStatisticsWereReadHasTheWholeBacklogAhead()
    {
        var readAt = Now.AddSeconds(-1);
        var stats = Backlog(completionsPerSecond: 0.001);

        var queue = Estimate(Pending(Now, updatedAt: Now), stats, readAt: readAt);

        Assert.Equal(9, queue.Position);
    }

    [Fact]
    public void WhatTheRateClaimedSinceTheStatisticsWereReadIsNoLongerAhead()
    {
        var readAt = Now.AddSeconds(-2);
        var stats = new KindStatistics
        {
            Kind = Kind, Pending = 9, PendingAll = 9, Running = 1, FirstDueKey = readAt.AddSeconds(-8).AddMinutes(-5),
            LastDueKey = readAt.AddMinutes(-5), MeanRunSeconds = 1, CompletionsPerSecond = 2,
        };

        var queue = Estimate(Pending(readAt), stats, readAt: readAt);

        // 8 ahead when read two seconds ago (it was the last due then), 4 claimed since at 2 per second.
        Assert.Equal(new OperationQueue(4, OperationQueueReason.Queued, Now.AddSeconds(2)), queue);
    }

    [Fact]
    public void AHigherPriorityGoesBeforeOperationsThatFellDueUpToAMinutePerLevelEarlier()
    {
        var queue = Estimate(Pending(Now, priority: 9), Backlog(completionsPerSecond: 2));

        Assert.Equal(new OperationQueue(0, OperationQueueReason.Queued, Now), queue);
    }

    [Fact]
    public void AScheduledOperationHasAheadOnlyWhatTheRateWillNotHaveWorkedOffByItsTime()
    {
        var stats = new KindStatistics
        {
            Kind = Kind, Pending = 30, PendingAll = 31, Running = 4, FirstDueKey = Now.AddMinutes(-6), LastDueKey = Now.AddMinutes(-5),
            MeanRunSeconds = 2, CompletionsPerSecond = 2,
        };

        var queue = Estimate(Pending(Now.AddSeconds(10)), stats);

        // 30 ahead now; 20 of them claimed in the 10 s until it falls due; the other 10 take 5 s more.
        Assert.Equal(new OperationQueue(10, OperationQueueReason.Scheduled, Now.AddSeconds(15)), queue);
    }

    [Fact]
    public void AScheduledOperationOfAnIdleKindStartsAtItsTime()
    {
        var queue = Estimate(Pending(Now.AddMinutes(10)), kind: null);

        Assert.Equal(new OperationQueue(0, OperationQueueReason.Scheduled, Now.AddMinutes(10)), queue);
    }

    [Fact]
    public void ARetryWaitingForItsBackoffSaysSoAndStartsWhenItFallsDue()
    {
        var due = Now.AddSeconds(30).AddTicks(5);

        var queue = Estimate(Pending(due, attempts: 1), kind: null);

        Assert.Equal(OperationQueueReason.RetryBackoff, queue.Reason);
        Assert.Equal(0, queue.Position);
        Assert.True(queue.EstimatedStartAt >= due, $"{queue.EstimatedStartAt:O} is before it falls due at {due:O}.");
        Assert.Equal(due, queue.EstimatedStartAt!.Value, TimeSpan.FromMilliseconds(1));
    }

    [Fact]
    public void APausedKindHasNoExpectedStartWhetherOrNotTheOperationIsDue()
    {
        var paused = Defaults with { Paused = true };

        var due = Estimate(Pending(Now), Backlog(), paused);
        var scheduled = Estimate(Pending(Now.AddMinutes(1)), Backlog(), paused);

        Assert.Equal(new OperationQueue(8, OperationQueueReason.Paused, null), due);
        Assert.Equal(OperationQueueReason.Paused, scheduled.Reason);
        Assert.Null(scheduled.EstimatedStartAt);
    }

    [Fact]
    public void AKindAtItsCapWaitsForAPlaceAndGoesNoFasterThanTheCapOverTheMeanRunTime()
    {
        var capped = Defaults with { MaxConcurrency = 2 };
        var stats = Backlog(completionsPerSecond: 10, running: 2, meanRunSeconds: 4);

        var queue = Estimate(Pending(Now.AddSeconds(-8)), stats, capped);

        // Nothing ahead, but a place must free up first: 1 / min(10, 2 / 4 s) = 2 s.
        Assert.Equal(new OperationQueue(0, OperationQueueReason.ConcurrencyLimit, Now.AddSeconds(2)), queue);
    }

    [Fact]
    public void ATenantAtItsCapIsAConcurrencyLimitToo()
    {
        var queue = Estimate(Pending(Now.AddSeconds(-8)), Backlog(completionsPerSecond: 1), tenantCap: 3, tenantRunning: 3);
        var below = Estimate(Pending(Now.AddSeconds(-8)), Backlog(completionsPerSecond: 1), tenantCap: 3, tenantRunning: 2);

        Assert.Equal(new OperationQueue(0, OperationQueueReason.ConcurrencyLimit, Now.AddSeconds(1)), queue);
        Assert.Equal(OperationQueueReason.Queued, below.Reason);
    }

    [Fact]
    public void WithNothingEndedLatelyTheRateIsWhatRunsOverTheMeanRunTime()
    {
        var queue = Estimate(Pending(Now), Backlog(completionsPerSecond: 0, running: 4, meanRunSeconds: 2));

        Assert.Equal(new OperationQueue(8, OperationQueueReason.Queued, Now.AddSeconds(4)), queue);
    }

    [Fact]
    public void WhenNothingTellsTheRateOnlyAnOperationWithNothingAheadHasAnExpectedStart()
    {
        var idle = Backlog(completionsPerSecond: 0, running: 0, meanRunSeconds: null);

        var last = Estimate(Pending(Now), idle);
        var first = Estimate(Pending(Now.AddSeconds(-8)), idle);

        Assert.Equal(new OperationQueue(8, OperationQueueReason.Queued, null), last);
        Assert.Equal(new OperationQueue(0, OperationQueueReason.Queued, Now), first);
    }

    [Fact]
    public void BeforeTheStatisticsWereEverReadNoStartIsEstimated()
    {
        var queue = OperationQueueEstimator.Estimate(Pending(Now), Now, readAt: null, kind: null, Defaults, tenantCap: null, tenantRunning: 0);

        Assert.Equal(new OperationQueue(0, OperationQueueReason.Queued, null), queue);
    }

    [Fact]
    public void AStartTooFarAheadToMeanAnythingIsNotEstimated()
    {
        var crawling = new KindStatistics
        {
            Kind = Kind, Pending = 1_000_000, PendingAll = 1_000_000, Running = 1, FirstDueKey = Now.AddMinutes(-6), LastDueKey = Now.AddMinutes(-5),
            MeanRunSeconds = 86_400,
        };

        var queue = Estimate(Pending(Now), crawling);

        Assert.Equal(999_999, queue.Position);
        Assert.Null(queue.EstimatedStartAt);
    }

    [Fact]
    public void TheCompletionRateIsBoundedByTheCapOverTheMeanRunTime()
    {
        Assert.Equal(5, OperationQueueEstimator.Rate(Backlog(completionsPerSecond: 5, meanRunSeconds: 2), maxConcurrency: null));
        Assert.Equal(1.5, OperationQueueEstimator.Rate(Backlog(completionsPerSecond: 5, meanRunSeconds: 2), maxConcurrency: 3));
        Assert.Null(OperationQueueEstimator.Rate(kind: null, maxConcurrency: 3));
    }
}
