using System.Diagnostics;
using System.Globalization;
using PollingApi.FuzzTests.Checks;
using PollingApi.FuzzTests.Generation;
using PollingApi.FuzzTests.Sending;

namespace PollingApi.FuzzTests;

/// <summary>
/// Sends the seed's requests from <see cref="FuzzSettings.Concurrency"/> senders until <see cref="FuzzSettings.Requests"/>
/// were sent (a request HttpClient refuses to send is replaced by the next number) or the duration limit passes, and
/// checks every answer as it comes.
/// </summary>
internal sealed class FuzzRun(FuzzSettings settings, FuzzRequestGenerator generator, HttpRequestSender http, RawSocketSender raw, FuzzReport report)
{
    public const string WithinDurationLimit = "all-requests-sent-within-duration-limit";

    private static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(10);

    private long _nextNumber;
    private int _budget;

    public async Task<TimeSpan> RunAsync(CancellationToken cancellationToken)
    {
        _nextNumber = (settings.Only ?? 1) - 1;
        _budget = settings.Requests;
        var watch = Stopwatch.StartNew();
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(settings.DurationLimit);
        using var progressStop = new CancellationTokenSource();
        var progress = ReportProgressAsync(watch, progressStop.Token);

        await Task.WhenAll(Enumerable.Range(0, settings.Concurrency).Select(_ => Task.Run(() => SendAsync(limit.Token), CancellationToken.None)));
        await progressStop.CancelAsync();
        await progress;
        cancellationToken.ThrowIfCancellationRequested();
        if (limit.IsCancellationRequested)
        {
            report.Violation(WithinDurationLimit,
                $"only {report.Sent.ToString(CultureInfo.InvariantCulture)} of {settings.Requests.ToString(CultureInfo.InvariantCulture)} requests were sent " +
                $"within the duration limit of {settings.DurationLimit.TotalSeconds:0} s");
        }

        return watch.Elapsed;
    }

    private async Task SendAsync(CancellationToken limit)
    {
        try
        {
            while (Interlocked.Decrement(ref _budget) >= 0)
            {
                while (true)
                {
                    limit.ThrowIfCancellationRequested();
                    var request = generator.Generate(Interlocked.Increment(ref _nextNumber));
                    var outcome = request.Raw is null ? await http.SendAsync(request, limit) : await raw.SendAsync(request, limit);
                    report.Count(request.Family, outcome);
                    if (outcome.Kind != OutcomeKind.RefusedByClient)
                    {
                        AnswerChecks.Check(request, outcome, report);
                        break;
                    }

                    report.Note("refused by HttpClient (not sent)", $"{request.Describe()} => {outcome.Detail}");
                    if (settings.Only is not null)
                    {
                        break;
                    }
                }
            }
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested)
        {
            // The duration limit passed, or the run was interrupted: RunAsync tells which.
        }
    }

    private async Task ReportProgressAsync(Stopwatch watch, CancellationToken stop)
    {
        try
        {
            while (true)
            {
                await Task.Delay(ProgressInterval, stop);
                Console.WriteLine($"  sent {report.Sent.ToString(CultureInfo.InvariantCulture)} of {settings.Requests.ToString(CultureInfo.InvariantCulture)} " +
                                  $"in {watch.Elapsed.TotalSeconds:0} s");
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The senders are done.
        }
    }
}
