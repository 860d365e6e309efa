using Microsoft.Playwright;

namespace PollingApi.BrowserTests;

/// <summary>
/// One headless chromium for the suite: Debian's package (<c>apt-get install chromium</c>), or the executable named by
/// <c>POLLINGAPI_CHROMIUM</c>. Playwright's own browser download is never used.
/// </summary>
public sealed class Chromium : IAsyncLifetime
{
    public const string ExecutableVariable = "POLLINGAPI_CHROMIUM";

    private IPlaywright? _playwright;
    private IBrowser? _browser;

    public IBrowser Browser => _browser ?? throw new InvalidOperationException("Not initialised.");

    public static string ExecutablePath =>
        Environment.GetEnvironmentVariable(ExecutableVariable) is { Length: > 0 } configured ? configured : "/usr/bin/chromium";

    public async Task InitializeAsync()
    {
        if (!File.Exists(ExecutablePath))
        {
            throw new InvalidOperationException(
                $"No chromium at {ExecutablePath}: install Debian's package (apt-get install chromium) or set {ExecutableVariable}.");
        }

        _playwright = await Playwright.CreateAsync();
        _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ExecutablePath,
            Headless = true,
            // The sandbox needs user namespaces, which a CI container run as root does not give.
            Args = ["--no-sandbox", "--disable-dev-shm-usage"],
        });
    }

    /// <summary>A fresh tab (its own session storage) at 1280x800 unless told otherwise.</summary>
    public async Task<IPage> NewPageAsync(int width = 1280, int height = 800, string timeZone = "Europe/Berlin")
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            ViewportSize = new ViewportSize { Width = width, Height = height },
            TimezoneId = timeZone,
            Locale = "en-GB",
        });
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(15_000);
        return page;
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null)
        {
            await _browser.DisposeAsync();
        }

        _playwright?.Dispose();
    }
}

/// <summary>Where the screenshots the README shows are written: docs/images of the repository the tests run in.</summary>
public static class Screenshots
{
    /// <summary>The folder with PollingApi.sln above the test binaries.</summary>
    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>
    /// Where a screenshot goes: the documentation's images with <c>POLLINGAPI_UPDATE_SCREENSHOTS=1</c>, otherwise the
    /// test results, so that an ordinary test run leaves the repository as it was.
    /// </summary>
    public static string PathOf(string name)
    {
        string images = Environment.GetEnvironmentVariable("POLLINGAPI_UPDATE_SCREENSHOTS") == "1"
            ? Path.Combine(RepositoryRoot, "docs", "images")
            : Path.Combine(RepositoryRoot, "TestResults", "screenshots");
        Directory.CreateDirectory(images);
        return Path.Combine(images, name);
    }

    private static string FindRoot()
    {
        var folder = new DirectoryInfo(AppContext.BaseDirectory);
        while (folder is not null && !File.Exists(Path.Combine(folder.FullName, "PollingApi.sln")))
        {
            folder = folder.Parent;
        }

        return folder?.FullName ?? throw new InvalidOperationException($"No PollingApi.sln above {AppContext.BaseDirectory}.");
    }
}
