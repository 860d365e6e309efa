using System.Diagnostics;

namespace PollingApi.Harness;

/// <summary>
/// Makes API keys the way an operator does: <c>dotnet PollingApi.dll api-keys create</c>, run from the dll's folder in the
/// Production environment against the given database.
/// </summary>
public static class ApiKeyCommand
{
    /// <summary>The operations scopes a load or fault client needs: submit, read and manage.</summary>
    public static readonly IReadOnlyList<string> ClientScopes = ["operations:submit", "operations:read", "operations:manage"];

    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Creates a key for <paramref name="tenant"/> with <paramref name="scopes"/> (named <paramref name="name"/>) and returns
    /// it. The command gets two minutes; a command that does not end by then (or when cancelled) is killed.
    /// </summary>
    public static async Task<string> CreateAsync(string dotnetHost, string apiDll, string connectionString, string tenant,
        IEnumerable<string> scopes, string name, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(dotnetHost)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(Path.GetFullPath(apiDll))!,
        };
        foreach (string argument in new[] { apiDll, "api-keys", "create", "--tenant", tenant, "--scopes", string.Join(',', scopes), "--name", name })
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        start.Environment["ConnectionStrings__Operations"] = connectionString;
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {dotnetHost}.");
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(Deadline);
        var output = process.StandardOutput.ReadToEndAsync(deadline.Token);
        var error = process.StandardError.ReadToEndAsync(deadline.Token);
        try
        {
            await process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            if (cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            throw new TimeoutException($"api-keys create did not end within {Deadline.TotalSeconds:0} s.");
        }

        string key = (await output.ConfigureAwait(false)).Trim();
        if (process.ExitCode != 0 || key.Length == 0)
        {
            throw new InvalidOperationException(
                $"api-keys create exited with {process.ExitCode}: {(await error.ConfigureAwait(false)).Trim()}");
        }

        return key;
    }
}
