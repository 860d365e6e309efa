using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>
/// <c>dotnet PollingApi.dll api-keys ...</c> run as its own process against the API's database, as an operator runs it.
/// </summary>
public sealed partial class ApiKeysCommandLineTests(SecuredPollingApiFactory factory) : IClassFixture<SecuredPollingApiFactory>
{
    [Fact]
    public async Task CreatePrintsOnlyTheNewKeyWhichThenWorksListShowsItAndRevokeEndsIt()
    {
        var created = await RunAsync("api-keys", "create", "--tenant", "cli-tenant", "--scopes", "operations:read", "--name", "ci smoke");

        Assert.Equal(0, created.ExitCode);
        Assert.Matches(KeyLine(), created.Output);
        string key = created.Output.Trim();
        Assert.Equal(HttpStatusCode.OK, (await factory.CreateClient(key).FetchAsync("/v1/operations")).Status);

        var list = await RunAsync("api-keys", "list", "--tenant", "cli-tenant");
        Assert.Equal(0, list.ExitCode);
        var line = list.Output.Split('\n').Single(l => l.Contains("ci smoke", StringComparison.Ordinal));
        string[] columns = line.Split('\t');
        Assert.Equal("cli-tenant", columns[1]);
        Assert.Equal("operations:read", columns[3]);
        Assert.StartsWith(columns[4].TrimEnd('.'), key, StringComparison.Ordinal);
        Assert.DoesNotContain(key, list.Output, StringComparison.Ordinal);
        Assert.Equal("-", columns[6].Trim());

        var revoked = await RunAsync("api-keys", "revoke", columns[0]);
        var again = await RunAsync("api-keys", "revoke", columns[0]);

        Assert.Equal(0, revoked.ExitCode);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("no active key", again.Error, StringComparison.Ordinal);
        await Eventually.WaitUntilAsync(async () =>
            (await factory.CreateClient(key).FetchAsync("/v1/operations")).Status == HttpStatusCode.Unauthorized, TimeSpan.FromSeconds(10));
    }

    [Theory]
    [InlineData("api-keys")]
    [InlineData("api-keys", "create", "--tenant", "t")]
    [InlineData("api-keys", "create", "--tenant", "t", "--scopes", "operations:everything")]
    [InlineData("api-keys", "create", "--tenant", "bad tenant!", "--scopes", "admin")]
    [InlineData("api-keys", "revoke", "not-a-guid")]
    [InlineData("api-keys", "list", "--scopes", "admin")]
    public async Task WrongArgumentsExitWithUsageAndPrintNothingOnStandardOutput(params string[] args)
    {
        var result = await RunAsync(args);

        Assert.Equal(2, result.ExitCode);
        Assert.Equal("", result.Output);
        Assert.Contains("usage: api-keys create", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithoutAConnectionStringItRefusesRatherThanWritingKeysNobodyKeeps()
    {
        var result = await RunAsync(withConnectionString: false, "api-keys", "list");

        Assert.Equal(2, result.ExitCode);
        Assert.Equal("", result.Output);
        Assert.Contains("ConnectionStrings__Operations", result.Error, StringComparison.Ordinal);
    }

    private sealed record Run(int ExitCode, string Output, string Error);

    private Task<Run> RunAsync(params string[] args) => RunAsync(withConnectionString: true, args);

    private async Task<Run> RunAsync(bool withConnectionString, params string[] args)
    {
        string dll = typeof(Program).Assembly.Location;
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        start.ArgumentList.Add(dll);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment.Remove("ConnectionStrings__Operations");
        if (withConnectionString)
        {
            start.Environment["ConnectionStrings__Operations"] = factory.DatabaseConnectionString;
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return new Run(process.ExitCode, await output, await error);
    }

    [GeneratedRegex(@"\Apak_[A-Za-z0-9_-]{43}\n\z")]
    private static partial Regex KeyLine();
}
