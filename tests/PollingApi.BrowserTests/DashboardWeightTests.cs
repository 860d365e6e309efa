using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Playwright;
using Npgsql;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace PollingApi.BrowserTests;

/// <summary>An API of its own whose table is filled with many finished operations before the page opens.</summary>
public sealed class SeededDashboardHost : DashboardHost
{
    /// <summary>Rows seeded: <c>POLLINGAPI_DASHBOARD_ROWS</c>, or 20,000 (scripts/dashboard-measure.sh uses 1,000,000).</summary>
    public static int Rows => int.TryParse(Environment.GetEnvironmentVariable("POLLINGAPI_DASHBOARD_ROWS"), NumberStyles.None,
        CultureInfo.InvariantCulture, out int rows) && rows > 0 ? rows : 20_000;
}

/// <summary>
/// What the first load of the dashboard costs and how long the overview takes to show with a full table. The figures are
/// written to artifacts/dashboard-measure.json and the test output (run at full size by scripts/dashboard-measure.sh); the
/// test asserts what the page shows and the page-weight budget, not a time.
/// </summary>
public sealed class DashboardWeightTests(SeededDashboardHost host, Chromium chromium, ITestOutputHelper output)
    : IClassFixture<SeededDashboardHost>, IClassFixture<Chromium>
{
    /// <summary>Rows completed in the last five minutes: the part of the table the overview's figures read.</summary>
    private const int RecentRows = 30_000;

    /// <summary>The page, its script and styles, uncompressed, with their headers: a budget that keeps it plain.</summary>
    private const long PageWeightBudgetBytes = 100 * 1024;

    [Fact]
    public async Task TheOverviewOfAFullTableShowsItsFiguresAndThePageStaysLight()
    {
        int rows = SeededDashboardHost.Rows;
        int recent = Math.Min(RecentRows, rows / 2);
        var seeding = Stopwatch.StartNew();
        await SeedAsync(rows, recent);
        seeding.Stop();
        string adminKey = await host.CreateApiKeyAsync("operators", "admin");
        var page = await chromium.NewPageAsync();
        var responses = new List<(string Url, Task<long> Size)>();
        page.Response += (_, response) => responses.Add((response.Url, SizeOfAsync(response)));

        await page.GotoAsync(host.DashboardAddress + "#/overview");
        await Expect(page.Locator("#sign-in")).ToBeVisibleAsync();
        await page.FillAsync("#api-key", adminKey);
        var rendering = Stopwatch.StartNew();
        await page.ClickAsync("#key-form button[type=submit]");
        var sleep = page.Locator("tr[data-kind='diagnostics.sleep']");
        await Expect(sleep).ToBeVisibleAsync(new() { Timeout = 60_000 });
        rendering.Stop();

        // Every third seeded row is an accounts.open, every 50th a failure; the recent ones are those completed in the window.
        int recentSleeps = Enumerable.Range(0, recent).Count(g => g % 3 != 0);
        int recentSleepFailures = Enumerable.Range(0, recent).Count(g => g % 3 != 0 && g % 50 == 0);
        await Expect(sleep.Locator("td").Nth(3)).ToHaveTextAsync(Format(recentSleeps - recentSleepFailures));
        await Expect(sleep.Locator("td").Nth(4)).ToHaveTextAsync(Format(recentSleepFailures));

        // The first load: the page's three files, and every API answer until the overview is drawn (the 401 that asks for
        // a key, then the stats).
        var sizes = new List<(string Url, long Size)>();
        foreach (var (url, size) in responses.ToList())
        {
            sizes.Add((url, await size));
        }

        var files = sizes.Where(r => r.Url.Contains("/dashboard/", StringComparison.Ordinal)).ToList();
        long filesBytes = files.Sum(r => r.Size);
        long transferred = sizes.Sum(r => r.Size);
        var report = new
        {
            rows,
            recentRows = recent,
            seedingSeconds = Math.Round(seeding.Elapsed.TotalSeconds, 1),
            pageFilesBytes = filesBytes,
            firstLoadBytes = transferred,
            firstLoadResponses = sizes.Count,
            overviewRenderMilliseconds = Math.Round(rendering.Elapsed.TotalMilliseconds),
            statsQueryMilliseconds = await TimeStatsAsync(adminKey),
        };
        string json = JsonSerializer.Serialize(report);
        output.WriteLine(json);
        string artifacts = Path.Combine(Screenshots.RepositoryRoot, "artifacts");
        Directory.CreateDirectory(artifacts);
        await File.WriteAllTextAsync(Path.Combine(artifacts, "dashboard-measure.json"), json + Environment.NewLine);

        Assert.Equal(3, files.Count);
        Assert.True(filesBytes <= PageWeightBudgetBytes, $"The page's files are {filesBytes} bytes; the budget is {PageWeightBudgetBytes}.");
        await page.Context.CloseAsync();
    }

    private static string Format(int value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static async Task<long> SizeOfAsync(IResponse response)
    {
        var sizes = await response.Request.SizesAsync();
        return sizes.ResponseBodySize + sizes.ResponseHeadersSize;
    }

    /// <summary>The stats endpoint's own time on the seeded table, median of 5 reads more than a second apart (its cache).</summary>
    private async Task<double> TimeStatsAsync(string adminKey)
    {
        using var client = host.CreateApiClient(adminKey);
        var times = new List<double>();
        for (int i = 0; i < 5; i++)
        {
            var started = Stopwatch.GetTimestamp();
            using var response = await client.GetAsync("v1/admin/stats");
            response.EnsureSuccessStatusCode();
            times.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            var readAt = Stopwatch.GetTimestamp();
            await Eventually.WaitUntilAsync(() => Task.FromResult(Stopwatch.GetElapsedTime(readAt) > TimeSpan.FromSeconds(1.1)), TimeSpan.FromSeconds(5));
        }

        return Math.Round(times.Order().ElementAt(2), 1);
    }

    /// <summary>
    /// <paramref name="rows"/> finished operations of 20 tenants: the first <paramref name="recent"/> completed within the
    /// last two minutes (well inside the overview's five, however long the seeding takes), the rest spread over the six days before; every third an accounts.open, every 50th failed.
    /// </summary>
    private async Task SeedAsync(int rows, int recent)
    {
        await using var connection = new NpgsqlConnection(host.ConnectionString);
        await connection.OpenAsync();
        await using var insert = new NpgsqlCommand("""
            INSERT INTO operations (id, owner, kind, status, payload, result, error, attempts, max_attempts, next_attempt_at,
                                    started_at, completed_at, created_at, updated_at)
            SELECT gen_random_uuid(), 'tenant-' || (g % 20),
                   CASE WHEN g % 3 = 0 THEN 'accounts.open' ELSE 'diagnostics.sleep' END,
                   CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'succeeded' END,
                   '{}', CASE WHEN g % 50 = 0 THEN NULL ELSE '{"durationMs": 1, "attempts": 1}'::jsonb END,
                   CASE WHEN g % 50 = 0 THEN '{"type": "urn:pollingapi:problem:diagnostics-permanent-failure", "title": "Seeded.", "detail": null}'::jsonb END,
                   1, 5, t.done, t.done - interval '20 milliseconds', t.done, t.done - interval '30 milliseconds', t.done
            FROM generate_series(0, @rows - 1) AS g,
                 LATERAL (SELECT CASE WHEN g < @recent THEN now() - (g * (interval '2 minutes' / @recent))
                                      ELSE now() - interval '6 minutes' - ((g - @recent) * (interval '6 days' / greatest(@rows - @recent, 1))) END AS done) AS t
            """, connection) { CommandTimeout = 600 };
        insert.Parameters.AddWithValue("rows", rows);
        insert.Parameters.AddWithValue("recent", recent);
        await insert.ExecuteNonQueryAsync();
        await using var analyze = new NpgsqlCommand("VACUUM ANALYZE operations", connection) { CommandTimeout = 600 };
        await analyze.ExecuteNonQueryAsync();
    }
}
