using Dapper;
using Npgsql;

namespace PollingApi.Operations.Webhooks;

/// <summary>One row of <c>webhook_subscriptions</c>.</summary>
internal sealed record WebhookSubscriptionRow
{
    public Guid Id { get; init; }
    public string Tenant { get; init; } = "";
    public string Url { get; init; } = "";
    public string[] Events { get; init; } = [];
    public string[]? Kinds { get; init; }
    public string Secret { get; init; } = "";
    public DateTime CreatedAt { get; init; }
    public DateTime? DisabledAt { get; init; }
    public string? DisabledReason { get; init; }
}

/// <summary>The SQL of <c>webhook_subscriptions</c>, and the delivery a test ping stores.</summary>
internal sealed class WebhookStore(NpgsqlDataSource dataSource)
{
    private const string Columns = """
        id, tenant, url, events, kinds, secret, created_at AS createdat, disabled_at AS disabledat, disabled_reason AS disabledreason
        """;

    /// <summary>Stores a subscription unless the tenant has <paramref name="limit"/> already; null then.</summary>
    public async Task<WebhookSubscriptionRow?> CreateAsync(WebhookSubscriptionRow row, int limit, CancellationToken cancellationToken)
    {
        // The count and the insert in one statement, serialised per tenant by an advisory lock for the transaction.
        const string Sql = $"""
            WITH locked AS (SELECT pg_advisory_xact_lock(hashtext('pollingapi.webhooks:' || @Tenant))),
                 existing AS (SELECT count(*) AS n FROM webhook_subscriptions, locked WHERE tenant = @Tenant AND disabled_at IS NULL)
            INSERT INTO webhook_subscriptions (id, tenant, url, events, kinds, secret, created_at)
            SELECT @Id, @Tenant, @Url, @Events, @Kinds, @Secret, @CreatedAt FROM existing WHERE n < @limit
            RETURNING {Columns}
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.QuerySingleOrDefaultAsync<WebhookSubscriptionRow>(new CommandDefinition(Sql,
            new { row.Id, row.Tenant, row.Url, row.Events, row.Kinds, row.Secret, row.CreatedAt, limit },
            cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>The owner's subscriptions (every tenant's for null), newest first.</summary>
    public async Task<IReadOnlyList<WebhookSubscriptionRow>> ListAsync(string? owner, CancellationToken cancellationToken)
    {
        const string Sql = $"SELECT {Columns} FROM webhook_subscriptions WHERE (@owner::text IS NULL OR tenant = @owner) ORDER BY created_at DESC, id";
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var rows = await connection.QueryAsync<WebhookSubscriptionRow>(new CommandDefinition(Sql, new { owner }, cancellationToken: cancellationToken))
            .ConfigureAwait(false);
        return rows.AsList();
    }

    /// <summary>One subscription of the owner (any owner's for null); null when not there.</summary>
    public async Task<WebhookSubscriptionRow?> FindAsync(Guid id, string? owner, CancellationToken cancellationToken)
    {
        const string Sql = $"SELECT {Columns} FROM webhook_subscriptions WHERE id = @id AND (@owner::text IS NULL OR tenant = @owner)";
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.QuerySingleOrDefaultAsync<WebhookSubscriptionRow>(new CommandDefinition(Sql, new { id, owner },
            cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    public async Task<bool> DeleteAsync(Guid id, string? owner, CancellationToken cancellationToken)
    {
        const string Sql = "DELETE FROM webhook_subscriptions WHERE id = @id AND (@owner::text IS NULL OR tenant = @owner)";
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.ExecuteAsync(new CommandDefinition(Sql, new { id, owner }, cancellationToken: cancellationToken))
            .ConfigureAwait(false) == 1;
    }

    /// <summary>Stops deliveries to a subscription (its receiver answered 410 Gone).</summary>
    public async Task DisableAsync(Guid id, string reason, DateTime now, CancellationToken cancellationToken)
    {
        const string Sql = """
            UPDATE webhook_subscriptions SET disabled_at = @now, disabled_reason = @reason WHERE id = @id AND disabled_at IS NULL
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await connection.ExecuteAsync(new CommandDefinition(Sql, new { id, reason, now }, cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>Stores a <c>webhook.test</c> delivery to an enabled subscription of the owner; its operation id, or null.</summary>
    public async Task<Guid?> EnqueueTestAsync(Guid id, string? owner, CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT webhooks_enqueue(s, 'webhook.test', now(), jsonb_build_object('subscriptionId', s.id, 'message', 'A test delivery.'), NULL)
            FROM webhook_subscriptions s
            WHERE s.id = @id AND (@owner::text IS NULL OR s.tenant = @owner) AND s.disabled_at IS NULL
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.QuerySingleOrDefaultAsync<Guid?>(new CommandDefinition(Sql, new { id, owner }, cancellationToken: cancellationToken))
            .ConfigureAwait(false);
    }
}
