using Microsoft.Playwright;
using Npgsql;
using static Microsoft.Playwright.Assertions;

namespace PollingApi.BrowserTests;

[CollectionDefinition(Name)]
public sealed class DashboardFixtures : ICollectionFixture<Chromium>, ICollectionFixture<DashboardHost>
{
    public const string Name = "dashboard";
}

/// <summary>
/// The dashboard in chromium against the real API: work submitted through the API appears, a failed operation is retried
/// from its page and succeeds, the failures page retries a group, the consistency page shows a finding, and a key without
/// the admin scope is refused.
/// </summary>
[Collection(DashboardFixtures.Name)]
public sealed class DashboardTests(Chromium chromium, DashboardHost host) : IAsyncLifetime
{
    private const string PermanentFailureType = "urn:pollingapi:problem:diagnostics-permanent-failure";

    private readonly List<string> _pageErrors = [];
    private readonly List<IPage> _pages = [];
    private string _adminKey = "";
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        SetDefaultExpectTimeout(15_000);
        _adminKey = await host.CreateApiKeyAsync("operators", "admin");
        string clientKey = await host.CreateApiKeyAsync("shop", "operations:submit", "operations:read", "operations:manage");
        _client = host.CreateApiClient(clientKey);
    }

    [Fact]
    public async Task TheOverviewShowsEachKindsQueueAndWhatFinishedAndKeepsUpToDate()
    {
        for (int i = 0; i < 3; i++)
        {
            await _client.SubmitSleepAsync(new { durationMs = 1 }, waitForIt: true);
        }

        var page = await OpenAsync("/overview", _adminKey);

        var sleep = page.Locator("tr[data-kind='diagnostics.sleep']");
        await Expect(page.Locator("#view h1")).ToHaveTextAsync("Overview");
        // A node reads the figures at most once a second, so the first ones may predate the last sleep: a refresh catches up.
        int succeeded = 0;
        await Eventually.WaitUntilAsync(async () => (succeeded = await CellNumberAsync(sleep, 5)) >= 3, TimeSpan.FromSeconds(15),
            () => $"{succeeded} succeeded sleeps shown; 3 were run");
        await Expect(page.Locator("tr[data-kind='accounts.open']")).ToBeVisibleAsync();
        await Expect(page.Locator("svg.chart")).ToHaveAttributeAsync("aria-label", new System.Text.RegularExpressions.Regex(@"\d+ completions in the last 5 minutes"));
        await Expect(page.Locator("svg.chart rect.succeeded")).ToHaveCountAsync(10);

        // Live: work finished after the page loaded shows on a later refresh, without reloading.
        await _client.SubmitSleepAsync(new { durationMs = 1 }, waitForIt: true);
        await Expect(sleep.Locator("td").Nth(3)).ToHaveTextAsync((succeeded + 1).ToString(System.Globalization.CultureInfo.InvariantCulture),
            new LocatorAssertionsToHaveTextOptions { Timeout = 20_000 });

        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Screenshots.PathOf("dashboard-overview.png"), FullPage = true });
        AssertNoPageErrors();
    }

    [Fact]
    public async Task SubmittedWorkAppearsInTheOperationsListAndTheFiltersNarrowIt()
    {
        var id = await _client.SubmitSleepAsync(new { durationMs = 1 }, waitForIt: true);

        var page = await OpenAsync("/operations", _adminKey);

        var row = page.Locator($"tr[data-id='{id}']");
        await Expect(row).ToBeVisibleAsync();
        await Expect(row.Locator(".status")).ToHaveTextAsync("succeeded");
        await Expect(row.Locator("td").Nth(3)).ToHaveTextAsync("shop");

        await page.SelectOptionAsync("select[name=status]", "failed");
        await page.ClickAsync("form.filters button[type=submit]");
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("#/operations\\?status=failed"));
        await Expect(row).ToHaveCountAsync(0);

        await page.SelectOptionAsync("select[name=status]", "succeeded");
        await page.FillAsync("input[name=tenant]", "shop");
        await page.ClickAsync("form.filters button[type=submit]");
        await Expect(row).ToBeVisibleAsync();
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Screenshots.PathOf("dashboard-operations.png"), FullPage = true });

        await page.FillAsync("input[name=tenant]", "another-tenant");
        await page.ClickAsync("form.filters button[type=submit]");
        await Expect(page.Locator("td.muted")).ToHaveTextAsync("No operation matches these filters.");
        AssertNoPageErrors();
    }

    [Fact]
    public async Task AFailedOperationIsRetriedFromItsPageAndThenSucceeds()
    {
        var failUntil = TimeProvider.System.GetUtcNow().AddSeconds(2);
        var id = await _client.SubmitSleepAsync(new { durationMs = 1, failUntil });
        await _client.WaitForStatusAsync(id, "failed");

        var page = await OpenAsync($"/operations/{id}", _adminKey);

        await Expect(page.Locator("dl.fields .status")).ToHaveTextAsync("failed");
        await Expect(page.Locator("dd.mono")).ToHaveTextAsync(PermanentFailureType);
        await Expect(page.Locator("table tbody tr")).ToHaveCountAsync(1);
        await Expect(page.Locator("table tbody tr td").Nth(1)).ToHaveTextAsync("permanent_failure");
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Cancel", Exact = true })).ToHaveCountAsync(0);
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Delete", Exact = true })).ToBeVisibleAsync();
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Screenshots.PathOf("dashboard-operation.png"), FullPage = true });

        // The dependency the sleep stands for is back: a retry now succeeds.
        await Eventually.WaitUntilAsync(() => Task.FromResult(TimeProvider.System.GetUtcNow() > failUntil), TimeSpan.FromSeconds(10));
        await page.GetByRole(AriaRole.Button, new() { Name = "Retry", Exact = true }).ClickAsync();
        await Expect(page.Locator("#confirm")).ToBeVisibleAsync();
        await page.ClickAsync("#confirm-button");

        await Expect(page.Locator("dl.fields .status")).ToHaveTextAsync("succeeded");
        await Expect(page.Locator("table tbody tr")).ToHaveCountAsync(2);
        await Expect(page.Locator("table tbody tr").Nth(1).Locator("td").Nth(1)).ToHaveTextAsync("succeeded");
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Retry", Exact = true })).ToHaveCountAsync(0);
        var operation = await _client.GetOperationAsync(id);
        Assert.Equal("succeeded", operation.GetProperty("status").GetString());
        Assert.Equal(1, operation.GetProperty("attempts").GetInt32());
        AssertNoPageErrors();
    }

    [Fact]
    public async Task TheFailedPageGroupsFailuresByKindAndErrorAndRetriesAGroup()
    {
        string tenantKey = await host.CreateApiKeyAsync("batch-jobs", "operations:submit", "operations:read");
        using var tenant = host.CreateApiClient(tenantKey);
        var failUntil = TimeProvider.System.GetUtcNow().AddSeconds(2);
        Guid[] ids = [await tenant.SubmitSleepAsync(new { durationMs = 1, failUntil }), await tenant.SubmitSleepAsync(new { durationMs = 1, failUntil })];
        foreach (var id in ids)
        {
            await tenant.WaitForStatusAsync(id, "failed");
        }

        var page = await OpenAsync("/failed?tenant=batch-jobs", _adminKey);

        var group = page.Locator($"tr[data-kind='diagnostics.sleep'][data-error-type='{PermanentFailureType}']");
        await Expect(group).ToBeVisibleAsync();
        await Expect(group.Locator("td").Nth(3)).ToHaveTextAsync("2");
        foreach (var id in ids)
        {
            await Expect(page.Locator($"tr[data-id='{id}']")).ToBeVisibleAsync();
        }

        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Screenshots.PathOf("dashboard-failed.png"), FullPage = true });

        await Eventually.WaitUntilAsync(() => Task.FromResult(TimeProvider.System.GetUtcNow() > failUntil), TimeSpan.FromSeconds(10));
        await group.GetByRole(AriaRole.Button, new() { Name = "Retry all 2" }).ClickAsync();
        await page.ClickAsync("#confirm-button");
        await Expect(page.Locator("#notice")).ToHaveTextAsync("Retried 2 operation(s).");
        foreach (var id in ids)
        {
            await tenant.WaitForStatusAsync(id, "succeeded");
        }

        await Expect(page.Locator("td.muted").First).ToHaveTextAsync("No failed operations.");
        AssertNoPageErrors();
    }

    [Fact]
    public async Task TheConsistencyPageShowsFindingsWithTheirIdsAndWhatToDo()
    {
        // A transfer on record as succeeded without its ledger entries: what the ledger's check looks for.
        var id = Guid.CreateVersion7();
        await using (var connection = new NpgsqlConnection(host.ConnectionString))
        {
            await connection.OpenAsync();
            await using var insert = new NpgsqlCommand("""
                INSERT INTO operations (id, owner, kind, status, payload, result, attempts, max_attempts, next_attempt_at, started_at,
                                        completed_at, created_at, updated_at)
                VALUES (@id, 'shop', 'transfers.create', 'succeeded', '{}', '{}', 1, 5, now(), now(), now(), now(), now())
                """, connection);
            insert.Parameters.AddWithValue("id", id);
            await insert.ExecuteNonQueryAsync();
        }

        try
        {
            var page = await OpenAsync("/consistency", _adminKey);

            var finding = page.Locator("article.finding").Filter(new() { Has = page.Locator($"a[href='#/operations/{id}']") });
            await Expect(finding).ToHaveCountAsync(1);
            await Expect(finding.Locator("p").Nth(1)).ToContainTextAsync("What to do:");
            await finding.Locator("summary").ClickAsync();
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = Screenshots.PathOf("dashboard-consistency.png"), FullPage = true });
            AssertNoPageErrors();
        }
        finally
        {
            await using var connection = new NpgsqlConnection(host.ConnectionString);
            await connection.OpenAsync();
            await using var delete = new NpgsqlCommand("DELETE FROM operations WHERE id = @id", connection);
            delete.Parameters.AddWithValue("id", id);
            await delete.ExecuteNonQueryAsync();
        }
    }

    [Fact]
    public async Task AKeyWithoutTheAdminScopeIsRefusedAndAnUnknownKeyIsNotAccepted()
    {
        string readerKey = await host.CreateApiKeyAsync("shop", "operations:read");
        var page = await chromium.NewPageAsync();
        Track(page);

        await page.GotoAsync(host.DashboardAddress + "#/overview");
        await Expect(page.Locator("#sign-in")).ToBeVisibleAsync();
        await Expect(page.Locator("#sign-in-reason")).ToHaveTextAsync("The API asks for a key.");

        await SignInAsync(page, readerKey);
        await Expect(page.Locator("#sign-in-reason")).ToHaveTextAsync("This key is refused: the dashboard needs a key with the admin scope.");
        await Expect(page.Locator("#view")).ToBeHiddenAsync();
        await Expect(page.Locator("table")).ToHaveCountAsync(0);

        await SignInAsync(page, "pak_" + new string('A', 43));
        await Expect(page.Locator("#sign-in-reason")).ToHaveTextAsync("This key was not accepted (unknown or revoked).");

        await SignInAsync(page, _adminKey);
        await Expect(page.Locator("#sign-in")).ToBeHiddenAsync();
        await Expect(page.Locator("#view h1")).ToHaveTextAsync("Overview");
        AssertNoPageErrors();
    }

    [Fact]
    public async Task TheKeyIsKeptForTheTabOnlyAndCanBeForgotten()
    {
        var page = await OpenAsync("/overview", _adminKey);
        await Expect(page.Locator("#view h1")).ToHaveTextAsync("Overview");
        Assert.Equal(_adminKey, await page.EvaluateAsync<string>("() => sessionStorage.getItem('pollingapi.dashboard.key')"));
        Assert.Equal(0, await page.EvaluateAsync<int>("() => localStorage.length"));

        await page.ClickAsync("#forget-key");
        await Expect(page.Locator("#sign-in")).ToBeVisibleAsync();
        Assert.Null(await page.EvaluateAsync<string?>("() => sessionStorage.getItem('pollingapi.dashboard.key')"));
        AssertNoPageErrors();
    }

    [Fact]
    public async Task ThePagesWorkFromTheKeyboardAndDatesShowTheViewersZoneWithUtcOnHover()
    {
        var id = await _client.SubmitSleepAsync(new { durationMs = 1 }, waitForIt: true);
        var page = await OpenAsync("/overview", _adminKey);
        await Expect(page.Locator("#view h1")).ToHaveTextAsync("Overview");

        // Tab to the navigation's "Operations" link and follow it with Enter: the new page's heading takes the focus.
        for (int i = 0; i < 10 && await page.EvaluateAsync<string>("() => document.activeElement?.textContent ?? ''") != "Operations"; i++)
        {
            await page.Keyboard.PressAsync("Tab");
        }

        await page.Keyboard.PressAsync("Enter");
        await Expect(page.Locator("#view h1")).ToHaveTextAsync("Operations");
        await Expect(page.Locator("#view h1")).ToBeFocusedAsync();
        await Expect(page.Locator("nav a[aria-current=page]")).ToHaveTextAsync("Operations");

        var created = page.Locator($"tr[data-id='{id}'] time").First;
        string iso = (await created.GetAttributeAsync("datetime"))!;
        Assert.Equal($"{iso.Replace('T', ' ').Replace("Z", "", StringComparison.Ordinal)} UTC", await created.GetAttributeAsync("title"));
        var instant = DateTimeOffset.Parse(iso, System.Globalization.CultureInfo.InvariantCulture);
        var berlin = TimeZoneInfo.ConvertTime(instant, TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin"));
        await Expect(created).ToContainTextAsync(berlin.ToString("HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture));
        AssertNoPageErrors();
    }

    [Fact]
    public async Task OnAPhoneTheOverviewFitsTheWidthAndALiveRefreshMovesNothing()
    {
        await _client.SubmitSleepAsync(new { durationMs = 1 }, waitForIt: true);
        var page = await OpenAsync("/overview", _adminKey, width: 390, height: 844);
        await Expect(page.Locator("tr[data-kind='diagnostics.sleep']")).ToBeVisibleAsync();
        await page.EvaluateAsync("""
            () => {
              window.layoutShift = 0;
              new PerformanceObserver(list => { for (const entry of list.getEntries()) window.layoutShift += entry.value; })
                .observe({ type: 'layout-shift' });
            }
            """);
        string firstUpdate = (await page.Locator("p.muted time").GetAttributeAsync("datetime"))!;

        await Expect(page.Locator("p.muted time")).Not.ToHaveAttributeAsync("datetime", firstUpdate, new() { Timeout = 20_000 });

        Assert.Equal(0, await page.EvaluateAsync<double>("() => window.layoutShift"));
        Assert.True(await page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= window.innerWidth"),
            "The page is wider than a phone's screen: only tables may scroll sideways, inside their own box.");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Screenshots.PathOf("dashboard-phone.png"), FullPage = true });
        AssertNoPageErrors();
    }

    private async Task<IPage> OpenAsync(string fragment, string key, int width = 1280, int height = 800)
    {
        var page = await chromium.NewPageAsync(width, height);
        Track(page);
        await page.GotoAsync(host.DashboardAddress + "#" + fragment);
        await Expect(page.Locator("#sign-in")).ToBeVisibleAsync();
        await SignInAsync(page, key);
        await Expect(page.Locator("#sign-in")).ToBeHiddenAsync();
        return page;
    }

    private static async Task SignInAsync(IPage page, string key)
    {
        await page.FillAsync("#api-key", key);
        await page.ClickAsync("#key-form button[type=submit]");
    }

    private void Track(IPage page)
    {
        _pages.Add(page);
        page.PageError += (_, error) => _pageErrors.Add($"page error: {error}");
        page.Console += (_, message) =>
        {
            // A 401 or 403 the page handles is logged by chromium as a failed resource load, not an error of the page.
            if (message.Type == "error" && !message.Text.Contains("status of 401", StringComparison.Ordinal)
                                        && !message.Text.Contains("status of 403", StringComparison.Ordinal))
            {
                _pageErrors.Add($"console: {message.Text}");
            }
        };
    }

    private void AssertNoPageErrors() => Assert.True(_pageErrors.Count == 0, string.Join(Environment.NewLine, _pageErrors));

    private static async Task<int> CellNumberAsync(ILocator row, int column)
    {
        string text = await row.Locator("th, td").Nth(column - 1).InnerTextAsync();
        return int.Parse(text.Replace(",", "", StringComparison.Ordinal), System.Globalization.NumberStyles.AllowThousands,
            System.Globalization.CultureInfo.InvariantCulture);
    }

    public async Task DisposeAsync()
    {
        foreach (var page in _pages)
        {
            await page.Context.CloseAsync();
        }

        _client.Dispose();
    }
}

/// <summary>Development as shipped: the dashboard needs no key.</summary>
public sealed class DevelopmentDashboardTests(DevelopmentDashboardHost host, Chromium chromium)
    : IClassFixture<DevelopmentDashboardHost>, IClassFixture<Chromium>
{
    [Fact]
    public async Task InDevelopmentTheDashboardOpensWithoutAKey()
    {
        using var anonymous = host.CreateApiClient(null);
        await anonymous.SubmitSleepAsync(new { durationMs = 1 }, waitForIt: true);
        var page = await chromium.NewPageAsync();

        await page.GotoAsync(host.DashboardAddress.ToString());

        await Expect(page.Locator("#view h1")).ToHaveTextAsync("Overview");
        await Expect(page.Locator("#sign-in")).ToBeHiddenAsync();
        await Expect(page.Locator("tr[data-kind='diagnostics.sleep'] td").Nth(3)).ToHaveTextAsync("1");
        await Expect(page.Locator("#forget-key")).ToBeHiddenAsync();
        await page.Context.CloseAsync();
    }
}
