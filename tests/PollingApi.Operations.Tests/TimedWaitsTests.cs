using System.Runtime.ExceptionServices;
using PollingApi.Operations.Lifecycle;

namespace PollingApi.Operations.Tests;

public sealed class TimedWaitsTests
{
    // Marks the exceptions thrown on this test's own asynchronous flow, so that tests running alongside are not counted.
    private static readonly AsyncLocal<bool> InThisTest = new();

    [Fact]
    public async Task AWaitThatRunsOutReturnsFalseWithoutThrowingAndACompletedOneReturnsTrue()
    {
        var thrown = new List<Exception>();
        void Count(object? sender, FirstChanceExceptionEventArgs e)
        {
            if (InThisTest.Value)
            {
                lock (thrown)
                {
                    thrown.Add(e.Exception);
                }
            }
        }

        AppDomain.CurrentDomain.FirstChanceException += Count;
        try
        {
            InThisTest.Value = true;
            var never = new TaskCompletionSource();
            for (int i = 0; i < 20; i++)
            {
                Assert.False(await never.Task.CompletesWithinAsync(TimeSpan.FromMilliseconds(1), TimeProvider.System, CancellationToken.None));
            }

            var done = new TaskCompletionSource<int>();
            var waiting = done.Task.CompletesWithinAsync(TimeSpan.FromSeconds(30), TimeProvider.System, CancellationToken.None);
            done.SetResult(7);
            Assert.True(await waiting);
        }
        finally
        {
            InThisTest.Value = false;
            AppDomain.CurrentDomain.FirstChanceException -= Count;
        }

        lock (thrown)
        {
            Assert.Empty(thrown);
        }
    }

    [Fact]
    public async Task ACancelledWaitStillThrowsOperationCanceled()
    {
        using var cancel = new CancellationTokenSource();
        var waiting = new TaskCompletionSource().Task.CompletesWithinAsync(TimeSpan.FromSeconds(30), TimeProvider.System, cancel.Token);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
    }
}
