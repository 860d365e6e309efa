using System.Diagnostics;
using System.Globalization;
using PollingApi.Benchmarks;
using PollingApi.Harness;
using PollingApi.LocalPostgres;

const int Measured = 0;
const int Broken = 1;
const int UsageError = 2;
const int Interrupted = 130;

if (args.Contains("--help", StringComparer.Ordinal) || args.Contains("-h", StringComparer.Ordinal))
{
    Console.WriteLine(BenchmarkSettings.Usage);
    return Measured;
}

if (!CommandLineReader.TryParse(() => BenchmarkSettings.Parse(args, TimeProvider.System.GetUtcNow()), BenchmarkSettings.Usage, out var settings))
{
    return UsageError;
}

if (!File.Exists(settings.ApiDll))
{
    Console.Error.WriteLine($"{settings.ApiDll} does not exist: build src/PollingApi in Release first (scripts/bench.sh does).");
    return UsageError;
}

if (!LocalPostgresCluster.IsAvailable)
{
    Console.Error.WriteLine("initdb and pg_ctl were not found: install the PostgreSQL server binaries (apt-get install postgresql).");
    return Broken;
}

// Ctrl+C (or SIGTERM) cancels the run; the finally blocks then stop the API and delete the cluster.
using var interrupt = new SignalCancellation("stopping the API and the cluster");

var startedAt = TimeProvider.System.GetUtcNow();
var total = Stopwatch.StartNew();
double[] loadAverage = ReadLoadAverage();
Directory.CreateDirectory(settings.RunDirectory);
var progress = Console.Error;
progress.WriteLine(
    $"benchmark: {settings.Runs} run(s), {settings.Window.TotalSeconds:0} s windows after {settings.Warmup.TotalSeconds:0} s warm-up, " +
    $"{settings.Clients} clients, (g) with {settings.SeedRows:N0} rows, (k) with {settings.ClaimOperations:N0} operations; load average at start " +
    $"{string.Join(' ', loadAverage.Select(l => l.ToString("0.00", CultureInfo.InvariantCulture)))} on {Environment.ProcessorCount} cores; " +
    $"logs in {settings.RunDirectory}");

var runs = new List<RunResult>();
string? failure = null;
try
{
    for (int run = 1; run <= settings.Runs; run++)
    {
        runs.Add(await new BenchmarkRun(settings, run, progress).ExecuteAsync(interrupt.Token));
    }
}
catch (OperationCanceledException) when (interrupt.IsCancellationRequested)
{
    progress.WriteLine($"interrupted after {total.Elapsed.TotalSeconds:0} s");
    return Interrupted;
}
catch (Exception ex) when (ex is InvalidOperationException or TimeoutException or IOException or Npgsql.NpgsqlException
                               or HttpRequestException or System.ComponentModel.Win32Exception)
{
    // Something broke (the cluster, the API, pgbench, a step that timed out): report what was measured before it.
    failure = ex.Message;
    progress.WriteLine($"BROKEN after {total.Elapsed.TotalSeconds:0} s: {ex}");
}

long errors = runs.Sum(run => run.Loads.Sum(load => load.Result.Errors));
if (runs.Count > 0)
{
    Console.WriteLine(BenchmarkReport.Markdown(settings, runs, loadAverage));
    foreach (var (scenario, load) in runs.SelectMany(run => run.Loads).Where(l => l.Result.Errors > 0))
    {
        Console.WriteLine($"ERRORS in ({scenario}): {load.Errors}, e.g. {string.Join(" | ", load.ErrorSamples)}");
    }
}

if (failure is not null)
{
    Console.WriteLine($"FAILED: {failure}");
}

Console.WriteLine(BenchmarkReport.Json(settings, runs, startedAt, total.Elapsed.TotalSeconds, loadAverage, errors, failure));
progress.WriteLine($"benchmark took {total.Elapsed.TotalSeconds:0} s; logs in {settings.RunDirectory}");
return failure is null && errors == 0 ? Measured : Broken;

static double[] ReadLoadAverage()
{
    try
    {
        return File.ReadAllText("/proc/loadavg").Split(' ').Take(3).Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
    }
    catch (IOException)
    {
        return [];
    }
}
