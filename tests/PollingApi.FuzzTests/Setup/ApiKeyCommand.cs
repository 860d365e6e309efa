using System.Diagnostics;

namespace PollingApi.FuzzTests.Setup;

/// <summary>
/// Makes an API key with the application's own command line, as an operator would:
/// <c>dotnet PollingApi.dll api-keys create --tenant T --scopes S --name fuzz</c>, run from the build's folder against the
/// run's database. The command prints the key, and only the key, on standard output and exits 0.
/// </summary>
internal static class ApiKeyCommand
{
    public const string Scopes = "operations:submit,operations:read,operations:manage";

    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(120);

    /// <summary>
    /// The key, and a complaint when the command printed more than the key (the key is then its last line). Throws
    /// <see cref="InvalidOperationException"/> when the command fails: the run cannot go on without keys.
    /// </summary>
    public static async Task<(string Key, string? Complaint)> CreateAsync(string dotnetHost, string apiDll, string connectionString, string tenant,
        CancellationToken cancellationToken)
    {
        var startInfo = new ProcessStartInfo(dotnetHost)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = Path.GetDirectoryName(apiDll)!,
        };
        foreach (string argument in new[] { apiDll, "api-keys", "create", "--tenant", tenant, "--scopes", Scopes, "--name", "fuzz" })
        {
            startInfo.ArgumentList.Add(argument);
        }

        startInfo.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        startInfo.Environment["DOTNET_ENVIRONMENT"] = "Production";
        startInfo.Environment["ConnectionStrings__Operations"] = connectionString;

        using var process = Process.Start(startInfo) ?? throw new InvalidOperationException($"Could not start {dotnetHost}.");
        process.StandardInput.Close();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(Deadline);
        var output = process.StandardOutput.ReadToEndAsync(deadline.Token);
        var error = process.StandardError.ReadToEndAsync(deadline.Token);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            process.Kill();
            throw new TimeoutException($"api-keys create --tenant {tenant} did not finish within {Deadline.TotalSeconds:0} s.");
        }

        string stdout = await output;
        string stderr = await error;
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"api-keys create --tenant {tenant} exited with {process.ExitCode}.{Environment.NewLine}stdout: {stdout}{Environment.NewLine}stderr: {stderr}");
        }

        string[] lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (lines.Length == 0)
        {
            throw new InvalidOperationException($"api-keys create --tenant {tenant} exited 0 but printed no key. stderr: {stderr}");
        }

        string? complaint = lines.Length == 1 && !lines[0].Any(char.IsWhiteSpace)
            ? null
            : $"api-keys create --tenant {tenant} printed {lines.Length} line(s) on standard output, not just the key: {stdout.Trim()}";
        return (lines[^1], complaint);
    }
}
