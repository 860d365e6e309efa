using DbUp;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace PollingApi.Operations.Storage;

/// <summary>
/// Applies the embedded SQL migrations with DbUp. Nodes that start together serialise on a PostgreSQL
/// advisory lock, so exactly one applies each script and the others find the journal up to date.
/// </summary>
internal sealed partial class DatabaseMigrator(NpgsqlDataSource dataSource, OperationsDatabase database, IEnumerable<MigrationSource> sources,
    ILogger<DatabaseMigrator> logger)
{
    // An arbitrary constant shared by every node: "PollingApi" migrations.
    private const long MigrationLockKey = 0x506f6c6c_4d696772;

    public async Task MigrateAsync(CancellationToken cancellationToken)
    {
        await using NpgsqlConnection lockConnection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (var takeLock = new NpgsqlCommand("SELECT pg_advisory_lock(@key)", lockConnection))
        {
            takeLock.Parameters.AddWithValue("key", MigrationLockKey);
            // Another node may hold it for as long as its migrations take (an index built over a big table): no timeout.
            takeLock.CommandTimeout = 0;
            await takeLock.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        try
        {
            var builder = DeployChanges.To
                .PostgresqlDatabase(database.ConnectionString)
                .WithScriptsEmbeddedInAssembly(typeof(DatabaseMigrator).Assembly,
                    name => name.Contains(".Storage.Migrations.", StringComparison.Ordinal));
            foreach (var source in sources)
            {
                builder = builder.WithScriptsEmbeddedInAssembly(source.Assembly,
                    name => name.Contains(".Migrations.", StringComparison.Ordinal) && name.EndsWith(".sql", StringComparison.Ordinal));
            }

            var upgrader = builder
                .WithTransactionPerScript()
                .JournalToPostgresqlTable("public", "schema_migrations")
                .LogToNowhere()
                .Build();

            var result = upgrader.PerformUpgrade();
            if (!result.Successful)
            {
                throw new InvalidOperationException(
                    result.ErrorScript is { } script ? $"Database migration {script.Name} failed." : "Database migration failed.", result.Error);
            }

            foreach (var script in result.Scripts)
            {
                LogApplied(script.Name);
            }
        }
        finally
        {
            await using var releaseLock = new NpgsqlCommand("SELECT pg_advisory_unlock(@key)", lockConnection);
            releaseLock.Parameters.AddWithValue("key", MigrationLockKey);
            await releaseLock.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Applied database migration {Script}")]
    private partial void LogApplied(string script);
}

/// <summary>An assembly whose embedded <c>Migrations/*.sql</c> scripts are applied with the engine's.</summary>
internal sealed record MigrationSource(System.Reflection.Assembly Assembly);

/// <summary>The connection string of the operations database (the data source hides its password).</summary>
internal sealed record OperationsDatabase(string ConnectionString);
