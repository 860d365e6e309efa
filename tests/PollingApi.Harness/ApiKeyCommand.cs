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

    /// <summary>Creates a key for <paramref name="tenant"/> with <paramref name="scopes"/> and returns it.</summary>
    public static async Task<string> CreateAsync(string dotnetHost, string apiDll, string connectionString, string tenant,
        IEnumerable<string> scopes, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(dotnetHost)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(Path.GetFullPath(apiDll))!,
        };
        foreach (string argument in new[] { apiDll, "api-keys", "create", "--tenant", tenant, "--scopes", string.Join(',', scopes), "--name", "harness" })
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        start.Environment["ConnectionStrings__Operations"] = connectionString;
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {dotnetHost}.");
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var error = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        string key = (await output.ConfigureAwait(false)).Trim();
        if (process.ExitCode != 0 || key.Length == 0)
        {
            throw new InvalidOperationException(
                $"api-keys create exited with {process.ExitCode}: {(await error.ConfigureAwait(false)).Trim()}");
        }

        return key;
    }
}
