using PollingApi.Operations;
using PollingApi.Operations.Handlers;

namespace PollingApi.Diagnostics;

public sealed class SleepHandler(TimeProvider timeProvider) : IOperationHandler<SleepRequest, SleepResult>
{
    public const string PermanentFailureType = ProblemTypes.Prefix + "diagnostics-permanent-failure";

    /// <summary>Sleeps at least this long report 50 % progress halfway.</summary>
    public const int ProgressThresholdMs = 1000;

    public async Task<SleepResult> HandleAsync(SleepRequest request, OperationContext context, CancellationToken cancellationToken)
    {
        int duration = request.DurationMs ?? 0;
        if (duration >= ProgressThresholdMs)
        {
            // A long sleep says where it is, as a real handler would: progress reaches pollers and event streams.
            var half = TimeSpan.FromMilliseconds(duration / 2.0);
            await Task.Delay(half, timeProvider, cancellationToken).ConfigureAwait(false);
            await context.ReportProgressAsync(50, "halfway", cancellationToken).ConfigureAwait(false);
            await Task.Delay(TimeSpan.FromMilliseconds(duration) - half, timeProvider, cancellationToken).ConfigureAwait(false);
        }
        else if (duration > 0)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(duration), timeProvider, cancellationToken).ConfigureAwait(false);
        }

        if (request.FailPermanently)
        {
            throw new PermanentOperationFailureException(PermanentFailureType, "The sleep was asked to fail permanently.",
                "diagnostics.sleep was submitted with failPermanently: true.");
        }

        if (request.FailUntil is { } until && timeProvider.GetUtcNow() < until)
        {
            throw new PermanentOperationFailureException(PermanentFailureType, "The sleep was asked to fail until a later time.",
                $"diagnostics.sleep was submitted with failUntil: {until.UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffZ}.");
        }

        if (context.Attempt <= request.FailTimes)
        {
            throw new SimulatedTransientFailureException(context.Attempt, request.FailTimes);
        }

        return new SleepResult(duration, context.Attempt);
    }
}

/// <summary>The transient failure a sleep was asked to simulate on its first attempts.</summary>
public sealed class SimulatedTransientFailureException : Exception
{
    public SimulatedTransientFailureException(int attempt, int failTimes)
        : base($"Simulated transient failure on attempt {attempt} of the first {failTimes}.")
    {
    }

    public SimulatedTransientFailureException()
    {
    }

    public SimulatedTransientFailureException(string message)
        : base(message)
    {
    }

    public SimulatedTransientFailureException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
