using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Security;

/// <summary>
/// <c>api-keys create|list|revoke</c>: manages API keys from the command line of the host, against the database the
/// host is configured with (the schema is migrated first). <c>create</c> prints the new key, and nothing else, on
/// standard output: it is shown this once and only its hash is kept.
/// </summary>
public static class ApiKeysCommandLine
{
    /// <summary>The first argument that selects these commands.</summary>
    public const string Verb = "api-keys";

    private const string Usage = """
        usage: api-keys create --tenant <tenant> --scopes <scope,scope...> [--name <name>]
               api-keys list [--tenant <tenant>]
               api-keys revoke <key id>
        scopes: operations:submit, operations:read, operations:manage, admin
        """;

    /// <summary>Whether <paramref name="args"/> ask for these commands rather than for the server.</summary>
    public static bool IsInvocation(IReadOnlyList<string> args) => args is [Verb, ..];

    /// <summary>Runs the command. Exit codes: 0 done, 1 no such key to revoke, 2 usage.</summary>
    public static async Task<int> RunAsync(IReadOnlyList<string> args, IServiceProvider services, TextWriter output, TextWriter error,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (!TryParse(args, out var command, out var problem))
        {
            await error.WriteLineAsync($"{problem}\n{Usage}").ConfigureAwait(false);
            return 2;
        }

        await services.GetRequiredService<DatabaseMigrator>().MigrateAsync(cancellationToken).ConfigureAwait(false);
        var store = services.GetRequiredService<ApiKeyStore>();
        var now = services.GetRequiredService<TimeProvider>().GetUtcNow();
        switch (command.Verb)
        {
            case "create":
                string key = ApiKeySecret.Create();
                await store.InsertAsync(new ApiKeyRow
                {
                    Id = Guid.CreateVersion7(now),
                    Tenant = command.Tenant!,
                    Name = command.Name ?? "",
                    Scopes = [.. command.Scopes],
                    KeyHash = ApiKeySecret.Hash(key),
                    KeyPrefix = ApiKeySecret.Display(key),
                    CreatedAt = now.UtcDateTime,
                }, cancellationToken).ConfigureAwait(false);
                await output.WriteLineAsync(key).ConfigureAwait(false);
                return 0;

            case "list":
                var keys = await store.ListAsync(command.Tenant, cancellationToken).ConfigureAwait(false);
                await output.WriteLineAsync("id\ttenant\tname\tscopes\tkey\tcreated\trevoked").ConfigureAwait(false);
                foreach (var row in keys)
                {
                    await output.WriteLineAsync(string.Join('\t', row.Id, row.Tenant, row.Name, string.Join(',', row.Scopes), row.KeyPrefix + "...",
                        Timestamp(row.CreatedAt), row.RevokedAt is { } revoked ? Timestamp(revoked) : "-")).ConfigureAwait(false);
                }

                return 0;

            default:
                if (!await store.RevokeAsync(command.KeyId, now.UtcDateTime, cancellationToken).ConfigureAwait(false))
                {
                    await error.WriteLineAsync($"There is no active key {command.KeyId}.").ConfigureAwait(false);
                    return 1;
                }

                await output.WriteLineAsync($"Revoked key {command.KeyId}; it stops working on every node within a few seconds.").ConfigureAwait(false);
                return 0;
        }
    }

    private static string Timestamp(DateTime value) => value.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private sealed record Command(string Verb, string? Tenant, IReadOnlyList<string> Scopes, string? Name, Guid KeyId);

    private static bool TryParse(IReadOnlyList<string> args, out Command command, out string problem)
    {
        command = null!;
        problem = "";
        if (args.Count < 2 || args[1] is not ("create" or "list" or "revoke"))
        {
            problem = "Name a command: create, list or revoke.";
            return false;
        }

        string verb = args[1];
        if (verb == "revoke")
        {
            if (args.Count != 3 || !Guid.TryParse(args[2], out var id))
            {
                problem = "revoke takes the id of a key (as api-keys list shows it).";
                return false;
            }

            command = new Command(verb, null, [], null, id);
            return true;
        }

        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 2; i < args.Count; i += 2)
        {
            if (args[i] is not ("--tenant" or "--scopes" or "--name") || i + 1 >= args.Count || !options.TryAdd(args[i], args[i + 1]))
            {
                problem = $"Unexpected argument '{args[i]}'.";
                return false;
            }
        }

        string? tenant = options.GetValueOrDefault("--tenant");
        if ((verb == "create" || tenant is not null) && !CallerClaims.IsValidTenant(tenant))
        {
            problem = "--tenant must be 1 to 64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit.";
            return false;
        }

        if (verb == "list")
        {
            if (options.Keys.Any(option => option != "--tenant"))
            {
                problem = "list takes only --tenant.";
                return false;
            }

            command = new Command(verb, tenant, [], null, Guid.Empty);
            return true;
        }

        string[] scopes = options.GetValueOrDefault("--scopes")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];
        if (scopes.Length == 0 || scopes.Any(scope => !OperationScopes.All.Contains(scope, StringComparer.Ordinal)))
        {
            problem = $"--scopes must list one or more of {string.Join(", ", OperationScopes.All)}, separated by commas.";
            return false;
        }

        string? name = options.GetValueOrDefault("--name");
        if (name is { Length: > 100 } || (name is not null && name.Any(char.IsControl)))
        {
            problem = "--name is at most 100 characters, without control characters.";
            return false;
        }

        command = new Command(verb, tenant, [.. scopes.Distinct(StringComparer.Ordinal)], name, Guid.Empty);
        return true;
    }
}
