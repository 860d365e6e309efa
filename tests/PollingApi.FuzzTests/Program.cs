using System.Diagnostics;
using System.Globalization;
using System.Net;
using PollingApi.FuzzTests;
using PollingApi.FuzzTests.Checks;
using PollingApi.FuzzTests.Generation;
using PollingApi.FuzzTests.Sending;
using PollingApi.FuzzTests.Setup;
using PollingApi.Harness;
using PollingApi.LocalPostgres;

const int Passed = 0;
const int CheckViolated = 1;
const int UsageError = 2;
const int HarnessFailed = 3;
const int Interrupted = 130;

const string ApiSurvives = "api-survives-the-fuzz";
const string ApiStopsCleanly = "api-stops-cleanly";
const string NoErrorLogged = "no-error-in-api-log";

var readyDeadline = TimeSpan.FromSeconds(90);
var requestTimeout = TimeSpan.FromSeconds(20);
var rawReadTimeout = TimeSpan.FromSeconds(5);
var stopDeadline = TimeSpan.FromSeconds(30);
var keyDeadline = TimeSpan.FromSeconds(120);

if (args is ["-h" or "--help"])
{
    Console.WriteLine(FuzzSettings.Usage);
    return Passed;
}

if (!CommandLineReader.TryParse(() => FuzzSettings.Parse(args, TimeProvider.System.GetUtcNow()), FuzzSettings.Usage, out var settings))
{
    return UsageError;
}

if (!File.Exists(settings.ApiDll))
{
    Console.Error.WriteLine($"{settings.ApiDll} does not exist: build src/PollingApi in Release first (scripts/fuzz-test.sh does).");
    return UsageError;
}

if (!LocalPostgresCluster.IsAvailable)
{
    Console.Error.WriteLine("initdb and pg_ctl were not found: install the PostgreSQL server binaries (apt-get install postgresql).");
    return HarnessFailed;
}

// Ctrl+C (or SIGTERM) cancels the run; the finally block then kills the API and deletes the cluster.
using var interrupt = new SignalCancellation("stopping the API and the cluster");

Directory.CreateDirectory(settings.RunDirectory);
string what = settings.Only is { } only ? $"request #{only.ToString(CultureInfo.InvariantCulture)} only" : $"{settings.Requests.ToString(CultureInfo.InvariantCulture)} requests";
Console.WriteLine($"fuzz tests: {what}, seed {settings.Seed.ToString(CultureInfo.InvariantCulture)}, {settings.Concurrency.ToString(CultureInfo.InvariantCulture)} senders; " +
                  $"API logs in {settings.RunDirectory}");
string seedOption = $"--seed {settings.Seed.ToString(CultureInfo.InvariantCulture)}";
Console.WriteLine($"repeat this run with: scripts/fuzz-test.sh {seedOption} " +
                  (settings.Only is { } one ? $"--only {one.ToString(CultureInfo.InvariantCulture)}" : $"--requests {settings.Requests.ToString(CultureInfo.InvariantCulture)}"));

var total = Stopwatch.StartNew();
var report = new FuzzReport();
var fuzzTime = TimeSpan.Zero;
bool harnessFailed = false;
LocalPostgresCluster? cluster = null;
LoopbackApiProcess? api = null;
try
{
    var token = interrupt.Token;
    cluster = await LocalPostgresCluster.StartAsync(durable: false, token);
    string connectionString = await FuzzDatabase.CreateAsync(cluster, token);
    Console.WriteLine($"PostgreSQL is running on 127.0.0.1:{cluster.Port.ToString(CultureInfo.InvariantCulture)}");

    api = LoopbackApiProcess.Start(LoopbackApiProcess.DotnetHost, settings.ApiDll, connectionString, new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["Diagnostics__Enabled"] = "true",
        // The fuzz is about what the API does with hostile input, not about being told 429.
        ["RateLimiting__PermitsPerSecond"] = "100000",
        ["RateLimiting__Burst"] = "100000",
        // A valid wait in a hostile request holds it at most this long, so every request is answered well within its timeout.
        ["Operations__MaxWait"] = "00:00:02",
        // The scopes carry each request's trace id, which leads a logged error back to the request that caused it.
        ["Logging__Console__IncludeScopes"] = "true",
    }, Path.Combine(settings.RunDirectory, "api.stdout.log"), Path.Combine(settings.RunDirectory, "api.stderr.log"));
    using var plain = ApiCalls.CreateClient();
    var (readiness, lastAnswer) = await api.WaitUntilReadyAsync(plain, readyDeadline, TimeSpan.FromMilliseconds(100), token);
    if (readiness != Readiness.Ready)
    {
        throw new InvalidOperationException(
            $"The API was not ready ({readiness}, last answer: {lastAnswer}). Its last output:{Environment.NewLine}{api.Tail(30)}");
    }

    Console.WriteLine($"API (pid {api.Pid.ToString(CultureInfo.InvariantCulture)}) is ready on {api.BaseAddress}");
    var log = new ApiLog(api.StdoutPath, api.StderrPath);
    var mark = log.Now();

    // Two tenants' keys, made as an operator makes them: with the API's own command, against the same database.
    string keyA;
    string keyB;
    using (var keysDeadline = CancellationTokenSource.CreateLinkedTokenSource(token))
    {
        keysDeadline.CancelAfter(keyDeadline);
        try
        {
            keyA = await ApiKeyCommand.CreateAsync(LoopbackApiProcess.DotnetHost, settings.ApiDll, connectionString, "fuzz-a",
                ApiKeyCommand.ClientScopes, "fuzz", keysDeadline.Token);
            keyB = await ApiKeyCommand.CreateAsync(LoopbackApiProcess.DotnetHost, settings.ApiDll, connectionString, "fuzz-b",
                ApiKeyCommand.ClientScopes, "fuzz", keysDeadline.Token);
        }
        catch (OperationCanceledException) when (!token.IsCancellationRequested)
        {
            throw new TimeoutException($"'PollingApi.dll api-keys create' did not make both keys within {keyDeadline.TotalSeconds:0} s.");
        }
    }

    Console.WriteLine("made an API key for tenant fuzz-a and one for fuzz-b with 'PollingApi.dll api-keys create'");

    var calls = new ApiCalls(plain, api.BaseAddress);
    var known = await KnownResources.CreateAsync(calls, keyA, token);
    Console.WriteLine($"tenant fuzz-a has {known.Operations.Count.ToString(CultureInfo.InvariantCulture)} finished operations and 2 accounts to aim at");

    var generator = new FuzzRequestGenerator(settings.Seed, new FuzzTargets(keyA, keyB, known.Operations, known.AccountA, known.AccountB),
        TimeProvider.System.GetUtcNow());
    using (var fuzzClient = HttpRequestSender.CreateClient(settings.Concurrency))
    {
        var run = new FuzzRun(settings, generator, new HttpRequestSender(fuzzClient, api.BaseAddress, requestTimeout),
            new RawSocketSender(new IPEndPoint(IPAddress.Loopback, api.BaseAddress.Port), rawReadTimeout), report);
        Console.WriteLine("fuzzing");
        fuzzTime = await run.RunAsync(token);
    }

    Console.WriteLine($"sent {report.Sent.ToString(CultureInfo.InvariantCulture)} requests in {fuzzTime.TotalSeconds:0.0} s; checking the normal flow");
    if (api.HasExited)
    {
        report.Violation(ApiSurvives, $"the API exited with {api.ExitCode} during the fuzz. Its last output:{Environment.NewLine}{api.Tail(40)}");
    }
    else
    {
        await NormalFlow.CheckAsync(calls, keyA, keyB, report, token);

        // A graceful stop flushes the console log, so the scan below sees every entry.
        string? terminateFailure = await api.SendTerminateAsync(token);
        if (terminateFailure is not null || !await api.WaitForExitAsync(stopDeadline, token))
        {
            report.Violation(ApiStopsCleanly, terminateFailure ?? $"the API did not exit within {stopDeadline.TotalSeconds:0} s of SIGTERM");
        }
        else if (api.ExitCode != 0)
        {
            report.Violation(ApiStopsCleanly, $"the API exited with {api.ExitCode} after SIGTERM. Its last output:{Environment.NewLine}{api.Tail(20)}");
        }
    }

    // Whatever the API wrote is in the files once its output pipes are closed. Disposed once: a second dispose throws.
    var stopped = api;
    api = null;
    await stopped.DisposeAsync();
    var entries = log.EntriesSince(mark);
    foreach (var entry in entries.Where(e => e.IsError))
    {
        string cause = ApiLog.TraceIdOf(entry, entries) is { } traceId && TraceIds.RequestNumber(settings.Seed, traceId) is { } number
            ? $"logged for {generator.Generate(number).Describe()}"
            : "not logged for a request the suite can name";
        string text = string.Join(Environment.NewLine, entry.Text.Split('\n').Take(25).Select(l => l.TrimEnd('\r')));
        report.Violation(NoErrorLogged, $"{cause}:{Environment.NewLine}{text}");
    }

    foreach (var entry in entries.Where(e => e.Level is "warn" or "text"))
    {
        report.Note($"API log entries at level {entry.Level}", entry.Text.Split('\n')[0]);
    }
}
catch (OperationCanceledException) when (interrupt.IsCancellationRequested)
{
    Console.Error.WriteLine("interrupted");
    return Interrupted;
}
catch (Exception ex)
{
    // The harness could not do its job (PostgreSQL or the API did not start, a key could not be made): not a finding.
    Console.WriteLine($"HARNESS FAILURE after {total.Elapsed.TotalSeconds:0} s: {ex}");
    harnessFailed = true;
}
finally
{
    if (api is not null)
    {
        await api.DisposeAsync();
    }

    if (cluster is not null)
    {
        await cluster.DisposeAsync();
    }
}

foreach (string line in report.DescribeCounts().Concat(report.DescribeNotes()).Concat(report.DescribeViolations()))
{
    Console.WriteLine(line);
}

string summary = report.SummaryLine(settings.Seed, settings.Requests, fuzzTime, total.Elapsed);
Console.WriteLine(summary);
await File.WriteAllTextAsync(Path.Combine(settings.RunDirectory, "summary.json"), summary + Environment.NewLine, CancellationToken.None);
await File.WriteAllLinesAsync(Path.Combine(settings.RunDirectory, "violations.log"), report.AllViolations(), CancellationToken.None);
Console.WriteLine($"fuzz tests took {total.Elapsed.TotalSeconds:0} s (the fuzz itself {fuzzTime.TotalSeconds:0.0} s); " +
                  $"the API's log, summary.json and violations.log are in {settings.RunDirectory}");

if (harnessFailed)
{
    Console.WriteLine("FAILED: the harness could not complete the run");
    return HarnessFailed;
}

if (report.ViolationCount > 0)
{
    Console.WriteLine($"FAILED: {report.ViolationCount.ToString(CultureInfo.InvariantCulture)} violation(s) of {string.Join(", ", report.ViolatedChecks)}; " +
                      $"repeat with {seedOption}, or one request with {seedOption} --only <number>");
    return CheckViolated;
}

Console.WriteLine("PASSED: no check violated");
return Passed;
