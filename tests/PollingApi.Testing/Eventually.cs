using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace PollingApi.Testing;

/// <summary>Waits for a condition with a deadline instead of sleeping a fixed time.</summary>
public static class Eventually
{
    private static readonly TimeSpan Pause = TimeSpan.FromMilliseconds(25);

    /// <summary>Polls <paramref name="condition"/> until it holds; throws <see cref="TimeoutException"/> at the deadline.</summary>
    /// <param name="condition">The condition to wait for.</param>
    /// <param name="deadline">How long to wait at most.</param>
    /// <param name="lastState">Describes what was last seen, for the failure message.</param>
    /// <param name="conditionText">Filled in by the compiler: the condition's source text.</param>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan deadline, Func<string>? lastState = null,
        [CallerArgumentExpression(nameof(condition))] string conditionText = "")
    {
        ArgumentNullException.ThrowIfNull(condition);
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > deadline)
            {
                string seen = lastState is null ? "" : $" Last seen: {lastState()}";
                throw new TimeoutException($"Timed out after {deadline.TotalSeconds:0.###} s waiting until {conditionText}.{seen}");
            }

            await Task.Delay(Pause);
        }
    }
}
