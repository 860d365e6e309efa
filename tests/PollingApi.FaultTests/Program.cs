using System.Diagnostics;
using PollingApi.FaultTests;
using PollingApi.FaultTests.Infrastructure;
using PollingApi.FaultTests.Scenarios;
using PollingApi.Harness;
using PollingApi.LocalPostgres;

const int Passed = 0;
const int InvariantViolated = 1;
const int UsageError = 2;
const int HarnessFailed = 3;
const int Interrupted = 130;

if (args is ["-h" or "--help"])
{
    Console.WriteLine(FaultTestSettings.Usage);
    return Passed;
}

if (!CommandLineReader.TryParse(() => FaultTestSettings.Parse(args, TimeProvider.System.GetUtcNow()), FaultTestSettings.Usage, out var settings))
{
    return UsageError;
}

if (!File.Exists(settings.ApiDll))
{
    Console.Error.WriteLine($"{settings.ApiDll} does not exist: build src/PollingApi in Release first (scripts/fault-test.sh does).");
    return UsageError;
}

if (!LocalPostgresCluster.IsAvailable)
{
    Console.Error.WriteLine("initdb and pg_ctl were not found: install the PostgreSQL server binaries (apt-get install postgresql).");
    return HarnessFailed;
}

// Ctrl+C (or SIGTERM) cancels the run; the finally blocks then kill the nodes and delete the cluster.
using var interrupt = new SignalCancellation("stopping the nodes and the cluster");

Directory.CreateDirectory(settings.RunDirectory);
Console.WriteLine($"fault tests: {string.Join(", ", settings.Scenarios)}; seed {settings.Seed}; node logs in {settings.RunDirectory}");
var total = Stopwatch.StartNew();
var summaries = new List<string>();
int violations = 0;
int harnessFailures = 0;
LocalPostgresCluster? cluster = null;
try
{
    cluster = await LocalPostgresCluster.StartAsync(durable: true, interrupt.Token);
    Console.WriteLine($"PostgreSQL is running on 127.0.0.1:{cluster.Port}");
    using var http = ApiClient.CreateHttpClient();
    var context = new ScenarioContext(settings, cluster, http, LoopbackApiProcess.DotnetHost);
    foreach (string scenario in settings.Scenarios)
    {
        Console.WriteLine($"== {scenario}");
        var watch = Stopwatch.StartNew();
        try
        {
            var report = scenario switch
            {
                CrashScenario.Name => await new CrashScenario(context).RunAsync(interrupt.Token),
                OutageScenario.Name => await new OutageScenario(context).RunAsync(interrupt.Token),
                WebhooksScenario.Name => await new WebhooksScenario(context).RunAsync(interrupt.Token),
                ClockSkewScenario.Name => await new ClockSkewScenario(context).RunAsync(interrupt.Token),
                NetworkStallScenario.Name => await new NetworkStallScenario(context).RunAsync(interrupt.Token),
                AnyNodeScenario.Name => await new AnyNodeScenario(context).RunAsync(interrupt.Token),
                PostgresCrashScenario.Name => await new PostgresCrashScenario(context).RunAsync(interrupt.Token),
                _ => await new ShutdownScenario(context).RunAsync(interrupt.Token),
            };
            foreach (string line in report.DescribeViolations())
            {
                Console.WriteLine(line);
            }

            string summary = report.SummaryLine(watch.Elapsed);
            Console.WriteLine(summary);
            summaries.Add(summary);
            violations += report.ViolationCount;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !interrupt.IsCancellationRequested)
        {
            // The harness could not run the scenario (a node did not start, the cluster failed): say so, go on with the next.
            Console.WriteLine($"HARNESS FAILURE [{scenario}] after {watch.Elapsed.TotalSeconds:0} s: {ex}");
            harnessFailures++;
        }
    }
}
catch (OperationCanceledException) when (interrupt.IsCancellationRequested)
{
    Console.Error.WriteLine("interrupted");
    return Interrupted;
}
finally
{
    if (cluster is not null)
    {
        await cluster.DisposeAsync();
    }

    await File.WriteAllLinesAsync(Path.Combine(settings.RunDirectory, "summary.jsonl"), summaries, CancellationToken.None);
    Console.WriteLine($"fault tests took {total.Elapsed.TotalSeconds:0} s; node logs and summary.jsonl in {settings.RunDirectory}");
}

if (harnessFailures > 0)
{
    Console.WriteLine($"FAILED: the harness could not complete {harnessFailures} scenario(s)");
    return HarnessFailed;
}

if (violations > 0)
{
    Console.WriteLine($"FAILED: {violations} invariant violation(s)");
    return InvariantViolated;
}

Console.WriteLine("PASSED: no invariant violated");
return Passed;
