using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace PollingApi.Benchmarks.Infrastructure;

/// <summary>What one pgbench run measured.</summary>
internal sealed record PgBenchResult(double TransactionsPerSecond, double AverageLatencyMs, long Transactions, long FailedTransactions, CpuUsage Cpu);

/// <summary>
/// Runs <c>pgbench</c> (prepared statements, custom script) against our cluster as user postgres and reads its
/// "tps = ... (without initial connection time)" line.
/// </summary>
internal static partial class PgBench
{
    /// <summary>A single-row insert into a bigserial table: one durable commit per transaction, like a submit's INSERT.</summary>
    public const string InsertScript = "INSERT INTO bench_insert (v) VALUES (1);\n";

    /// <summary>A primary-key read of a random row: like a status read's SELECT.</summary>
    public static readonly string SelectScript =
        $"\\set id random(1, {BenchmarkSettings.SelectTableRows.ToString(CultureInfo.InvariantCulture)})\nSELECT v FROM bench_select WHERE id = :id;\n";

    private static readonly string[] UsualPlaces = ["/usr/bin/pgbench", "/usr/local/bin/pgbench"];

    public static string Locate() =>
        UsualPlaces
            .Concat(Directory.Exists("/usr/lib/postgresql")
                ? Directory.GetDirectories("/usr/lib/postgresql").OrderByDescending(d => d, StringComparer.Ordinal).Select(d => Path.Combine(d, "bin", "pgbench"))
                : [])
            .FirstOrDefault(File.Exists)
        ?? throw new InvalidOperationException("pgbench was not found in /usr/bin or /usr/lib/postgresql/*/bin: install the PostgreSQL client tools.");

    /// <summary>Runs the script at <paramref name="scriptPath"/> for <paramref name="duration"/> with <paramref name="clients"/> connections on 2 threads.</summary>
    public static async Task<PgBenchResult> RunAsync(string pgbench, int port, string database, string scriptPath, int clients, TimeSpan duration,
        CpuMeter cpu, CancellationToken cancellationToken)
    {
        var startInfo = new ProcessStartInfo(pgbench)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        startInfo.Environment["PGCONNECT_TIMEOUT"] = "10";
        foreach (string argument in (string[])[
                     "-h", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), "-U", "postgres",
                     "-n", "-M", "prepared", "-c", clients.ToString(CultureInfo.InvariantCulture),
                     "-j", Math.Min(2, clients).ToString(CultureInfo.InvariantCulture),
                     "-T", ((int)Math.Ceiling(duration.TotalSeconds)).ToString(CultureInfo.InvariantCulture),
                     "-f", scriptPath, database])
        {
            startInfo.ArgumentList.Add(argument);
        }

        var before = cpu.Snapshot();
        using var process = Process.Start(startInfo) ?? throw new InvalidOperationException($"Could not start {pgbench}.");
        process.StandardInput.Close();
        Task<string> output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        Task<string> error = process.StandardError.ReadToEndAsync(cancellationToken);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(duration + TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill();
            await process.WaitForExitAsync(CancellationToken.None);
            cancellationToken.ThrowIfCancellationRequested();
            throw new TimeoutException($"pgbench did not finish within {duration.TotalSeconds + 60:0} s.");
        }

        var usage = CpuMeter.Between(before, cpu.Snapshot());
        string text = await output;
        string errors = await error;
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"pgbench exited with {process.ExitCode.ToString(CultureInfo.InvariantCulture)}: {errors.Trim()} {text.Trim()}");
        }

        var tps = TpsLine().Match(text);
        if (!tps.Success)
        {
            throw new InvalidOperationException($"pgbench printed no tps line: {text.Trim()}");
        }

        var latency = LatencyLine().Match(text);
        var processed = ProcessedLine().Match(text);
        var failed = FailedLine().Match(text);
        return new PgBenchResult(
            double.Parse(tps.Groups[1].Value, CultureInfo.InvariantCulture),
            latency.Success ? double.Parse(latency.Groups[1].Value, CultureInfo.InvariantCulture) : double.NaN,
            processed.Success ? long.Parse(processed.Groups[1].Value, CultureInfo.InvariantCulture) : 0,
            failed.Success ? long.Parse(failed.Groups[1].Value, CultureInfo.InvariantCulture) : 0,
            usage);
    }

    [GeneratedRegex(@"^tps = ([0-9.]+) \(without initial connection time\)", RegexOptions.Multiline)]
    private static partial Regex TpsLine();

    [GeneratedRegex(@"^latency average = ([0-9.]+) ms", RegexOptions.Multiline)]
    private static partial Regex LatencyLine();

    [GeneratedRegex(@"^number of transactions actually processed: ([0-9]+)", RegexOptions.Multiline)]
    private static partial Regex ProcessedLine();

    [GeneratedRegex(@"^number of failed transactions: ([0-9]+)", RegexOptions.Multiline)]
    private static partial Regex FailedLine();
}
