using Dapper;
using Npgsql;

namespace PollingApi.Operations.Storage;

/// <summary>
/// The statements behind the API on the <c>operations</c> table: store submits, read and list operations, cancel,
/// retry and delete them, purge old ones. Each status change is one conditional statement that only succeeds from the
/// expected state. (A worker's statements are in <see cref="AttemptStore"/>.)
/// </summary>
internal sealed class OperationStore(NpgsqlDataSource dataSource)
{
    /// <summary>The channel the retry and delete statements notify (see <see cref="ForgetNotification"/>).</summary>
    public const string ForgetChannel = "pollingapi_operation_forget";

    private const string Columns = OperationColumns.All;
    private const string ViewColumns = OperationColumns.View;

    static OperationStore() => RowMapping.EnsureRegistered();

    // A finished operation changes only by a retry or a delete; the nodes' caches of finished operations learn of it
    // from this notification. Sent by the statement that makes the change, it is delivered exactly when the change
    // commits: it cannot be lost to a crash or a failed send after the commit (only to a listener that is away, and a
    // listener that reconnects starts with an empty cache). Retries and deletes are rare, so holding NOTIFY's commit
    // lock here costs nothing.
    private const string ForgetNotification = $"pg_notify('{ForgetChannel}', id::text) AS forget_notification";

    /// <summary>
    /// Stores a new pending operation. With an idempotency key, a second insert for the same owner and key stores
    /// nothing and returns null (the unique index decides, so concurrent duplicates create exactly one row).
    /// </summary>
    public async Task<OperationRow?> InsertAsync(NewOperation operation, DateTime now, CancellationToken cancellationToken)
    {
        const string Sql = $"""
            INSERT INTO operations (id, owner, kind, status, payload, attempts, max_attempts, next_attempt_at,
                                    trace_parent, idempotency_key, request_hash, created_at, updated_at, scheduled_at, priority)
            VALUES (@Id, @Owner, @Kind, 'pending', CAST(@Payload AS jsonb), 0, @MaxAttempts, coalesce(@ScheduledAt, @Now),
                    @TraceParent, @IdempotencyKey, @RequestHash, @Now, @Now, @ScheduledAt, @Priority)
            ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
            RETURNING {Columns}
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await WriteFailure.SentOnAsync(connection, c => c.QuerySingleOrDefaultAsync<OperationRow>(new CommandDefinition(Sql, new
        {
            operation.Id,
            operation.Owner,
            operation.Kind,
            operation.Payload,
            operation.MaxAttempts,
            operation.TraceParent,
            operation.IdempotencyKey,
            operation.RequestHash,
            operation.ScheduledAt,
            operation.Priority,
            Now = now,
        }, cancellationToken: cancellationToken))).ConfigureAwait(false);
    }

    // The batched insert of operations without idempotency keys, and its settling form: run again after a connection broke
    // before the first one's commit was acknowledged, it stores only the rows that are not there, waiting on the primary
    // key for a first insert that is still committing, and returns the ids it stored.
    private const string InsertManySql = """
        INSERT INTO operations (id, owner, kind, status, payload, attempts, max_attempts, next_attempt_at,
                                locked_by, locked_until, started_at, trace_parent, created_at, updated_at, scheduled_at, priority)
        SELECT id, owner, kind, CASE WHEN locked_by IS NULL THEN 'pending' ELSE 'running' END, CAST(payload AS jsonb),
               CASE WHEN locked_by IS NULL THEN 0 ELSE 1 END, max_attempts, coalesce(scheduled_at, created_at),
               locked_by, created_at + CASE WHEN locked_by IS NOT NULL THEN @leaseDuration END,
               CASE WHEN locked_by IS NOT NULL THEN created_at END, trace_parent, created_at, created_at, scheduled_at, priority
        FROM unnest(@ids, @owners, @kinds, @payloads, @maxAttempts, @lockedBy, @traceParents, @createdAt, @scheduledAt, @priorities)
             AS u(id, owner, kind, payload, max_attempts, locked_by, trace_parent, created_at, scheduled_at, priority)
        """;

    private const string InsertMissingSql = InsertManySql + """

        ON CONFLICT (id) DO NOTHING
        RETURNING id
        """;

    /// <summary>
    /// Stores new operations (without idempotency keys) in one statement and one commit. Each is pending, or, with a
    /// <see cref="OperationInsert.ClaimedBy"/> node, already running: its first attempt started at creation under a
    /// lease of <paramref name="leaseDuration"/>, so that node runs it without a claim. Throws
    /// <see cref="CommitOutcomeUnknownException"/> when the connection failed after the statement was sent.
    /// </summary>
    public async Task InsertManyAsync(IReadOnlyList<OperationInsert> inserts, TimeSpan leaseDuration, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = InsertManyCommand(InsertManySql, connection, inserts, leaseDuration);
        // Without ON CONFLICT, the statement stores every row or fails as a whole.
        await WriteFailure.SentOnAsync(connection, _ => command.ExecuteNonQueryAsync(cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>
    /// Settles an <see cref="InsertManyAsync"/> whose commit outcome is unknown: stores those of the operations that are
    /// not stored yet and returns their ids; the others were stored by the first insert.
    /// </summary>
    public async Task<IReadOnlyList<Guid>> InsertMissingAsync(IReadOnlyList<OperationInsert> inserts, TimeSpan leaseDuration,
        CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = InsertManyCommand(InsertMissingSql, connection, inserts, leaseDuration);
        var written = new List<Guid>(inserts.Count);
        await WriteFailure.SentOnAsync(connection, async _ =>
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                written.Add(reader.GetGuid(0));
            }

            return written;
        }).ConfigureAwait(false);
        return written;
    }

    private static NpgsqlCommand InsertManyCommand(string sql, NpgsqlConnection connection, IReadOnlyList<OperationInsert> inserts,
        TimeSpan leaseDuration)
    {
        int count = inserts.Count;
        var ids = new Guid[count];
        var owners = new string[count];
        var kinds = new string[count];
        var payloads = new string[count];
        var maxAttempts = new int[count];
        var lockedBy = new string?[count];
        var traceParents = new string?[count];
        var createdAt = new DateTime[count];
        var scheduledAt = new DateTime?[count];
        var priorities = new short[count];
        for (int i = 0; i < count; i++)
        {
            var insert = inserts[i];
            ids[i] = insert.Operation.Id;
            owners[i] = insert.Operation.Owner;
            kinds[i] = insert.Operation.Kind;
            payloads[i] = insert.Operation.Payload;
            maxAttempts[i] = insert.Operation.MaxAttempts;
            lockedBy[i] = insert.ClaimedBy;
            traceParents[i] = insert.Operation.TraceParent;
            createdAt[i] = insert.CreatedAt;
            scheduledAt[i] = insert.Operation.ScheduledAt;
            priorities[i] = insert.Operation.Priority;
        }

        var command = new NpgsqlCommand(sql, connection);
        command.Parameters.Add(new NpgsqlParameter<Guid[]>("ids", ids));
        command.Parameters.Add(new NpgsqlParameter<string[]>("owners", owners));
        command.Parameters.Add(new NpgsqlParameter<string[]>("kinds", kinds));
        command.Parameters.Add(new NpgsqlParameter<string[]>("payloads", payloads));
        command.Parameters.Add(new NpgsqlParameter<int[]>("maxAttempts", maxAttempts));
        command.Parameters.Add(new NpgsqlParameter<string?[]>("lockedBy", lockedBy) { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter<string?[]>("traceParents", traceParents) { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter<DateTime[]>("createdAt", createdAt));
        command.Parameters.Add(new NpgsqlParameter<DateTime?[]>("scheduledAt", scheduledAt) { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter<short[]>("priorities", priorities));
        command.Parameters.Add(new NpgsqlParameter<TimeSpan>("leaseDuration", leaseDuration));
        return command;
    }

    public async Task<OperationRow?> FindByIdempotencyKeyAsync(string owner, string idempotencyKey, CancellationToken cancellationToken)
    {
        const string Sql = $"SELECT {Columns} FROM operations WHERE owner = @owner AND idempotency_key = @idempotencyKey";
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.QuerySingleOrDefaultAsync<OperationRow>(
            new CommandDefinition(Sql, new { owner, idempotencyKey }, cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>
    /// A page of an owner's operations (every owner's when <paramref name="owner"/> is null), newest first, after the
    /// <paramref name="query"/>'s cursor.
    /// </summary>
    public async Task<IReadOnlyList<OperationRow>> ListAsync(string? owner, OperationQuery query, CancellationToken cancellationToken)
    {
        const string Filters = """
              AND (@Status::text IS NULL OR status = @Status)
              AND (@Kind::text IS NULL OR kind = @Kind)
              AND (@CreatedAfter::timestamptz IS NULL OR created_at > @CreatedAfter)
              AND (@CreatedBefore::timestamptz IS NULL OR created_at < @CreatedBefore)
              AND (@Before::uuid IS NULL OR id < @Before)
            ORDER BY id DESC
            LIMIT @Limit
            """;
        // Two statements, not one with "owner IS NULL OR": each gets a plan of its own (the owner's index, or the primary key).
        const string OwnersSql = $"SELECT {ViewColumns} FROM operations WHERE owner = @owner\n{Filters}";
        const string EveryOwnerSql = $"SELECT {ViewColumns} FROM operations WHERE true\n{Filters}";
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var rows = await connection.QueryAsync<OperationRow>(new CommandDefinition(owner is null ? EveryOwnerSql : OwnersSql, new
        {
            owner,
            query.Status,
            query.Kind,
            query.CreatedAfter,
            query.CreatedBefore,
            query.Before,
            query.Limit,
        }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return rows.AsList();
    }

    /// <summary>
    /// How many of the owner's operations are pending or running, counting no further than <paramref name="atMost"/>:
    /// the quota check needs to know only whether the cap is reached.
    /// </summary>
    public async Task<int> CountUnfinishedAsync(string owner, int atMost, CancellationToken cancellationToken)
    {
        // One count per status, so each can read its partial index (pending rows, running rows) rather than every row
        // the owner has.
        const string Sql = """
            SELECT (SELECT count(*) FROM (SELECT 1 FROM operations WHERE status = 'pending' AND owner = @owner LIMIT @atMost) AS p)::int
                 + (SELECT count(*) FROM (SELECT 1 FROM operations WHERE status = 'running' AND owner = @owner LIMIT @atMost) AS r)::int
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.ExecuteScalarAsync<int>(new CommandDefinition(Sql, new { owner, atMost }, cancellationToken: cancellationToken))
            .ConfigureAwait(false);
    }

    /// <summary>Cancels a pending operation at once. Null when it was not pending.</summary>
    public async Task<OperationRow?> CancelPendingAsync(Guid id, string? owner, string errorJson, DateTime now, CancellationToken cancellationToken)
    {
        const string Sql = $"""
            UPDATE operations
            SET status = 'cancelled', cancel_requested = true, error = CAST(@errorJson AS jsonb), completed_at = @now,
                updated_at = @now, version = version + 1
            WHERE id = @id AND (@owner::text IS NULL OR owner = @owner) AND status = 'pending'
            RETURNING {ViewColumns}
            """;
        return await WriteOptionalAsync(Sql, new { id, owner, errorJson, now }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Asks the worker running the operation to cancel it. Null when it was not running.</summary>
    public async Task<OperationRow?> RequestCancelAsync(Guid id, string? owner, DateTime now, CancellationToken cancellationToken)
    {
        const string Sql = $"""
            UPDATE operations
            SET cancel_requested = true, updated_at = @now, version = version + 1
            WHERE id = @id AND (@owner::text IS NULL OR owner = @owner) AND status = 'running' AND NOT cancel_requested
            RETURNING {ViewColumns}
            """;
        return await WriteOptionalAsync(Sql, new { id, owner, now }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Replays a failed or cancelled operation: back to pending with fresh attempts. Null when it was in another state, or
    /// no longer at <paramref name="expectedVersion"/> (the version the caller saw it failed or cancelled at).
    /// Tells every node to drop its cached copy in the same transaction (see <see cref="ForgetNotification"/>).
    /// </summary>
    public async Task<OperationRow?> RetryAsync(Guid id, string? owner, int expectedVersion, DateTime now, CancellationToken cancellationToken)
    {
        const string Sql = $"""
            WITH retried AS (
                UPDATE operations
                SET status = 'pending', attempts = 0, next_attempt_at = @now, result = NULL, error = NULL, progress = NULL,
                    cancel_requested = false, completed_at = NULL, started_at = NULL, updated_at = @now, version = version + 1
                WHERE id = @id AND (@owner::text IS NULL OR owner = @owner) AND status IN ('failed', 'cancelled') AND version = @expectedVersion
                RETURNING {ViewColumns})
            SELECT retried.*, {ForgetNotification} FROM retried
            """;
        return await WriteOptionalAsync(Sql, new { id, owner, expectedVersion, now }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Forgets a terminal operation. False when it was not terminal (or not there). Tells every node to drop its cached
    /// copy in the same transaction (see <see cref="ForgetNotification"/>).
    /// </summary>
    public async Task<bool> DeleteTerminalAsync(Guid id, string? owner, CancellationToken cancellationToken)
    {
        const string Sql = $"""
            WITH deleted AS (
                DELETE FROM operations WHERE id = @id AND (@owner::text IS NULL OR owner = @owner) AND status IN ('succeeded', 'failed', 'cancelled')
                RETURNING id)
            SELECT {ForgetNotification} FROM deleted
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var deleted = await WriteFailure.SentOnAsync(connection, c => c.QueryAsync(new CommandDefinition(Sql, new { id, owner },
            cancellationToken: cancellationToken))).ConfigureAwait(false);
        return deleted.Any();
    }

    /// <summary>Deletes up to <paramref name="batchSize"/> operations that completed before <paramref name="cutoff"/>.</summary>
    public async Task<int> PurgeCompletedAsync(DateTime cutoff, int batchSize, CancellationToken cancellationToken)
    {
        const string Sql = """
            WITH expired AS MATERIALIZED (
                SELECT id FROM operations
                WHERE completed_at < @cutoff
                ORDER BY completed_at
                LIMIT @batchSize
                FOR UPDATE SKIP LOCKED)
            DELETE FROM operations AS o
            USING expired
            WHERE o.id = expired.id
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.ExecuteAsync(new CommandDefinition(Sql, new { cutoff, batchSize }, cancellationToken: cancellationToken))
            .ConfigureAwait(false);
    }

    /// <summary>
    /// Per kind: how many operations are due and waiting and the claim keys of the first and last of them, how many run,
    /// the mean run time of the successes since <paramref name="since"/>, and how many operations ended per second lately;
    /// and per tenant, how many of its operations run.
    /// </summary>
    /// <remarks>
    /// One round trip every few seconds per API node. The queues cost one pass over the pending rows and the running ones,
    /// as the queue gauges always did; the rates read at most the last <see cref="CompletionSample"/> completions of the
    /// last <see cref="CompletionWindow"/> through <c>operations_completed_idx</c>, so a busy cluster costs no more than a
    /// quiet one: when the sample is full, the rate is measured over the time it spans.
    /// </remarks>
    public async Task<QueueStatistics> ReadQueueStatisticsAsync(DateTime now, DateTime since, CancellationToken cancellationToken)
    {
        const string Sql = """
            WITH recent AS (
                SELECT kind, extract(epoch FROM completed_at - started_at) AS run_seconds
                FROM operations
                WHERE completed_at > @since AND status = 'succeeded' AND started_at IS NOT NULL
                ORDER BY completed_at DESC
                LIMIT 2000),
            runs AS (SELECT kind, avg(run_seconds)::float8 AS mean_run_seconds FROM recent GROUP BY kind),
            ended AS (
                SELECT kind, completed_at FROM operations
                WHERE completed_at > @rateSince
                ORDER BY completed_at DESC
                LIMIT @sample),
            span AS (
                SELECT CASE WHEN count(*) < @sample THEN @rateSeconds
                            ELSE greatest(extract(epoch FROM @now - min(completed_at))::float8, 1) END AS seconds
                FROM ended),
            rates AS (SELECT kind, count(*) / (SELECT seconds FROM span) AS completions_per_second FROM ended GROUP BY kind),
            queue AS (SELECT kind, count(*) FILTER (WHERE next_attempt_at <= @now) AS pending, count(*) AS pending_all,
                             min(next_attempt_at) FILTER (WHERE next_attempt_at <= @now) AS oldest_due_at,
                             min(operations_claim_key(next_attempt_at, priority)) FILTER (WHERE next_attempt_at <= @now) AS first_due_key,
                             max(operations_claim_key(next_attempt_at, priority)) FILTER (WHERE next_attempt_at <= @now) AS last_due_key
                      FROM operations WHERE status = 'pending' GROUP BY kind),
            busy AS (SELECT kind, count(*) AS running FROM operations WHERE status = 'running' GROUP BY kind),
            kinds AS (SELECT kind FROM runs UNION SELECT kind FROM rates UNION SELECT kind FROM queue UNION SELECT kind FROM busy)
            SELECT kinds.kind, coalesce(queue.pending, 0) AS pending, coalesce(queue.pending_all, 0) AS pending_all,
                   coalesce(busy.running, 0) AS running, queue.oldest_due_at, queue.first_due_key, queue.last_due_key,
                   runs.mean_run_seconds, rates.completions_per_second
            FROM kinds
            LEFT JOIN runs ON runs.kind = kinds.kind
            LEFT JOIN rates ON rates.kind = kinds.kind
            LEFT JOIN queue ON queue.kind = kinds.kind
            LEFT JOIN busy ON busy.kind = kinds.kind;

            SELECT owner, count(*) AS running FROM operations WHERE status = 'running' GROUP BY owner;
            """;
        var rateSince = now - CompletionWindow;
        double rateSeconds = CompletionWindow.TotalSeconds;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var results = await connection.QueryMultipleAsync(new CommandDefinition(Sql, new { now, since, rateSince, rateSeconds, sample = CompletionSample },
            cancellationToken: cancellationToken)).ConfigureAwait(false);
        var kinds = (await results.ReadAsync<KindStatistics>().ConfigureAwait(false)).AsList();
        var tenants = (await results.ReadAsync<TenantRunning>().ConfigureAwait(false)).AsList();
        return new QueueStatistics(kinds, tenants);
    }

    /// <summary>How far back <see cref="ReadQueueStatisticsAsync"/> counts completions for a kind's rate.</summary>
    public static readonly TimeSpan CompletionWindow = TimeSpan.FromMinutes(1);

    /// <summary>The most completions <see cref="ReadQueueStatisticsAsync"/> reads for the rates.</summary>
    public const int CompletionSample = 2000;

    /// <summary>
    /// Per kind, for operators: due pending, running and scheduled retries now, and of the operations that finished since
    /// <paramref name="since"/>, how many succeeded and failed and the median and 95th percentile run time of the successes.
    /// </summary>
    public async Task<IReadOnlyList<KindActivityRow>> ReadKindActivityAsync(DateTime now, DateTime since, CancellationToken cancellationToken)
    {
        const string Sql = """
            WITH done AS (
                SELECT kind,
                       count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                       count(*) FILTER (WHERE status = 'failed') AS failed,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - started_at))
                           FILTER (WHERE status = 'succeeded' AND started_at IS NOT NULL) AS run_p50,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - started_at))
                           FILTER (WHERE status = 'succeeded' AND started_at IS NOT NULL) AS run_p95
                FROM operations WHERE completed_at > @since GROUP BY kind),
            queue AS (
                SELECT kind,
                       count(*) FILTER (WHERE next_attempt_at <= @now) AS pending,
                       count(*) FILTER (WHERE next_attempt_at > @now) AS scheduled_retries,
                       min(next_attempt_at) FILTER (WHERE next_attempt_at <= @now) AS oldest_due_at
                FROM operations WHERE status = 'pending' GROUP BY kind),
            busy AS (SELECT kind, count(*) AS running FROM operations WHERE status = 'running' GROUP BY kind)
            SELECT k.kind, coalesce(q.pending, 0) AS pending, coalesce(b.running, 0) AS running,
                   coalesce(q.scheduled_retries, 0) AS scheduled_retries, coalesce(d.succeeded, 0) AS succeeded,
                   coalesce(d.failed, 0) AS failed, q.oldest_due_at, d.run_p50::float8 AS run_p50, d.run_p95::float8 AS run_p95
            FROM (SELECT kind FROM done UNION SELECT kind FROM queue UNION SELECT kind FROM busy) AS k
            LEFT JOIN done AS d USING (kind) LEFT JOIN queue AS q USING (kind) LEFT JOIN busy AS b USING (kind)
            ORDER BY k.kind
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var rows = await connection.QueryAsync<KindActivityRow>(new CommandDefinition(Sql, new { now, since }, cancellationToken: cancellationToken))
            .ConfigureAwait(false);
        return rows.AsList();
    }

    /// <summary>
    /// Succeeded and failed completions per interval of <paramref name="bucket"/> since <paramref name="since"/>, from the
    /// index on <c>completed_at</c>; intervals without completions are left out.
    /// </summary>
    public async Task<IReadOnlyList<ThroughputRow>> ReadThroughputAsync(DateTime since, DateTime now, TimeSpan bucket, CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT floor(extract(epoch FROM completed_at - @since) / @bucketSeconds)::int AS bucket,
                   count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                   count(*) FILTER (WHERE status = 'failed') AS failed
            FROM operations WHERE completed_at > @since AND completed_at <= @now
            GROUP BY 1 ORDER BY 1
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var rows = await connection.QueryAsync<ThroughputRow>(new CommandDefinition(Sql,
            new { since, now, bucketSeconds = bucket.TotalSeconds }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return rows.AsList();
    }

    /// <summary>Failed operations grouped by kind and error type, largest group first (at most <paramref name="limit"/> groups).</summary>
    public async Task<IReadOnlyList<FailureGroupRow>> ReadFailureGroupsAsync(string? owner, string? kind, int limit, CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT kind, coalesce(error->>'type', '') AS error_type, max(error->>'title') AS title, count(*) AS count,
                   max(completed_at) AS last_failed_at
            FROM operations
            WHERE status = 'failed' AND (@kind::text IS NULL OR kind = @kind) AND (@owner::text IS NULL OR owner = @owner)
            GROUP BY kind, coalesce(error->>'type', '')
            ORDER BY count(*) DESC, kind, error_type
            LIMIT @limit
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var rows = await connection.QueryAsync<FailureGroupRow>(new CommandDefinition(Sql, new { owner, kind, limit },
            cancellationToken: cancellationToken)).ConfigureAwait(false);
        return rows.AsList();
    }

    /// <summary>
    /// Ids of failed operations that match the filters, in id order after <paramref name="after"/>: the batches of a "retry
    /// every failed operation like this" request.
    /// </summary>
    public async Task<IReadOnlyList<Guid>> ListFailedIdsAsync(string? owner, string? kind, string? errorType, Guid? after, int limit,
        CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT id FROM operations
            WHERE status = 'failed' AND (@kind::text IS NULL OR kind = @kind) AND (@owner::text IS NULL OR owner = @owner)
              AND (@errorType::text IS NULL OR coalesce(error->>'type', '') = @errorType) AND (@after::uuid IS NULL OR id > @after)
            ORDER BY id
            LIMIT @limit
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var ids = await connection.QueryAsync<Guid>(new CommandDefinition(Sql, new { owner, kind, errorType, after, limit },
            cancellationToken: cancellationToken)).ConfigureAwait(false);
        return ids.AsList();
    }

    // The filters of a bulk action's batch, after its status. Each status is a branch of its own with the status as a
    // literal, so that each branch can read its partial index (failed rows: operations_failed_idx, by kind and id;
    // pending rows: operations_claimable_idx; running rows: operations_lease_idx) instead of every row after @After, as
    // one "status IN (...)" would. Cancelled rows have no index of their own: that branch walks the primary key (or the
    // table), which is fine for an operator's occasional request over a table that retention keeps small.
    private const string BulkFilters = """
        AND (@Kind::text IS NULL OR kind = @Kind) AND (@Owner::text IS NULL OR owner = @Owner)
        AND (@ErrorType::text IS NULL OR coalesce(error->>'type', '') = @ErrorType)
        AND (@CreatedAfter::timestamptz IS NULL OR created_at > @CreatedAfter)
        AND (@CreatedBefore::timestamptz IS NULL OR created_at < @CreatedBefore)
        AND (@After::uuid IS NULL OR id > @After)
        ORDER BY id
        LIMIT @Limit
        """;

    /// <summary>
    /// Ids of the failed (when <paramref name="failed"/>) and cancelled (when <paramref name="cancelled"/>) operations
    /// that match the filter, in id order after <paramref name="after"/>: one batch of a bulk retry.
    /// </summary>
    public async Task<IReadOnlyList<Guid>> ListRetryableIdsAsync(BulkFilter filter, bool failed, bool cancelled, Guid? after, int limit,
        CancellationToken cancellationToken)
    {
        const string Sql = $"""
            (SELECT id FROM operations WHERE status = 'failed' AND @Failed
              {BulkFilters})
            UNION ALL
            (SELECT id FROM operations WHERE status = 'cancelled' AND @Cancelled
              {BulkFilters})
            ORDER BY id
            LIMIT @Limit
            """;
        return await ListBulkIdsAsync(Sql, filter, new { Failed = failed, Cancelled = cancelled }, after, limit, cancellationToken)
            .ConfigureAwait(false);
    }

    /// <summary>
    /// Ids of the pending (when <paramref name="pending"/>) and running (when <paramref name="running"/>) operations that
    /// match the filter, in id order after <paramref name="after"/>: one batch of a bulk cancel. A running operation whose
    /// cancellation was requested already is left out: asking again would change nothing.
    /// </summary>
    public async Task<IReadOnlyList<Guid>> ListCancellableIdsAsync(BulkFilter filter, bool pending, bool running, Guid? after, int limit,
        CancellationToken cancellationToken)
    {
        const string Sql = $"""
            (SELECT id FROM operations WHERE status = 'pending' AND @Pending
              {BulkFilters})
            UNION ALL
            (SELECT id FROM operations WHERE status = 'running' AND NOT cancel_requested AND @Running
              {BulkFilters})
            ORDER BY id
            LIMIT @Limit
            """;
        return await ListBulkIdsAsync(Sql, filter, new { Pending = pending, Running = running }, after, limit, cancellationToken)
            .ConfigureAwait(false);
    }

    private async Task<IReadOnlyList<Guid>> ListBulkIdsAsync(string sql, BulkFilter filter, object statuses, Guid? after, int limit,
        CancellationToken cancellationToken)
    {
        var parameters = new DynamicParameters(statuses);
        parameters.AddDynamicParams(new { filter.Owner, filter.Kind, filter.ErrorType, filter.CreatedAfter, filter.CreatedBefore, After = after, Limit = limit });
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var ids = await connection.QueryAsync<Guid>(new CommandDefinition(sql, parameters, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return ids.AsList();
    }

    /// <summary>The operation's attempt history and what is needed to describe an attempt still running; null when not there.</summary>
    public async Task<AttemptHistoryRow?> FindAttemptsAsync(Guid id, string? owner, CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT attempt_history::text AS attempt_history, status, attempts, started_at, locked_by, trace_parent
            FROM operations WHERE id = @id AND (@owner::text IS NULL OR owner = @owner)
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.QuerySingleOrDefaultAsync<AttemptHistoryRow>(
            new CommandDefinition(Sql, new { id, owner }, cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>The operations with these ids that still exist (any owner), for the event streams.</summary>
    public async Task<IReadOnlyList<OperationRow>> FindManyAsync(Guid[] ids, CancellationToken cancellationToken)
    {
        const string Sql = $"SELECT {ViewColumns} FROM operations WHERE id = ANY(@ids)";
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var rows = await connection.QueryAsync<OperationRow>(new CommandDefinition(Sql, new { ids }, cancellationToken: cancellationToken))
            .ConfigureAwait(false);
        return rows.AsList();
    }

    public async Task<OperationRow?> FindAsync(Guid id, string? owner, CancellationToken cancellationToken)
    {
        const string Sql = $"SELECT {ViewColumns} FROM operations WHERE id = @id AND (@owner::text IS NULL OR owner = @owner)";
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.QuerySingleOrDefaultAsync<OperationRow>(
            new CommandDefinition(Sql, new { id, owner }, cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    private async Task<OperationRow?> WriteOptionalAsync(string sql, object parameters, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await WriteFailure.SentOnAsync(connection, c => c.QuerySingleOrDefaultAsync<OperationRow>(
            new CommandDefinition(sql, parameters, cancellationToken: cancellationToken))).ConfigureAwait(false);
    }
}
