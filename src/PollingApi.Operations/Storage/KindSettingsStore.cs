using Dapper;
using Npgsql;

namespace PollingApi.Operations.Storage;

/// <summary>One row of <c>operation_kinds</c>: what operators set for a kind.</summary>
internal sealed record KindSettingsRow(string Kind, bool Paused, int? MaxConcurrency, int? AttemptTimeoutSeconds, short Priority, DateTime UpdatedAt);

/// <summary>The statements on <c>operation_kinds</c>. A change is announced to every node on <see cref="ChangedChannel"/>.</summary>
internal sealed class KindSettingsStore(NpgsqlDataSource dataSource)
{
    public const string ChangedChannel = "pollingapi_kinds_changed";

    public async Task<IReadOnlyList<KindSettingsRow>> ReadAllAsync(CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT kind, paused, max_concurrency AS maxconcurrency, attempt_timeout_seconds AS attempttimeoutseconds, priority,
                   updated_at AS updatedat
            FROM operation_kinds
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var rows = await connection.QueryAsync<KindSettingsRow>(new CommandDefinition(Sql, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return rows.AsList();
    }

    /// <summary>Stores a kind's settings, replacing what was there, and tells every node (on commit) to read them again.</summary>
    public async Task<KindSettingsRow> SaveAsync(KindSettingsRow settings, CancellationToken cancellationToken)
    {
        const string Sql = $"""
            WITH saved AS (
                INSERT INTO operation_kinds (kind, paused, max_concurrency, attempt_timeout_seconds, priority, updated_at)
                VALUES (@Kind, @Paused, @MaxConcurrency, @AttemptTimeoutSeconds, @Priority, @UpdatedAt)
                ON CONFLICT (kind) DO UPDATE
                SET paused = excluded.paused, max_concurrency = excluded.max_concurrency,
                    attempt_timeout_seconds = excluded.attempt_timeout_seconds, priority = excluded.priority, updated_at = excluded.updated_at
                RETURNING kind, paused, max_concurrency, attempt_timeout_seconds, priority, updated_at)
            SELECT kind, paused, max_concurrency AS maxconcurrency, attempt_timeout_seconds AS attempttimeoutseconds, priority,
                   updated_at AS updatedat, pg_notify('{ChangedChannel}', kind) AS notified
            FROM saved
            """;
        ArgumentNullException.ThrowIfNull(settings);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var row = await connection.QuerySingleAsync<SavedRow>(new CommandDefinition(Sql, settings, cancellationToken: cancellationToken))
            .ConfigureAwait(false);
        return new KindSettingsRow(row.Kind, row.Paused, row.MaxConcurrency, row.AttemptTimeoutSeconds, row.Priority, row.UpdatedAt);
    }

    // Mapped by property, so the notification's (void) column is left out.
    private sealed class SavedRow
    {
        public string Kind { get; init; } = "";
        public bool Paused { get; init; }
        public int? MaxConcurrency { get; init; }
        public int? AttemptTimeoutSeconds { get; init; }
        public short Priority { get; init; }
        public DateTime UpdatedAt { get; init; }
    }
}
