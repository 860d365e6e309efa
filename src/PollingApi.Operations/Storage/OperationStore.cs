using Dapper;
using Npgsql;

namespace PollingApi.Operations.Storage;

/// <summary>
/// Every statement that reads or writes the <c>operations</c> table. Each status change is one
/// conditional UPDATE: it only succeeds from the expected state, and changes of a running operation
/// are fenced by the claiming node and attempt, so a worker that lost its lease cannot overwrite
/// the outcome of the node that took the operation over.
/// </summary>
/// <remarks>
/// The fence of a running operation is <c>locked_by = node AND attempts = attempt</c>, without <c>status = 'running'</c>:
/// the table's <c>operations_lease_check</c> constraint sets <c>locked_by</c> on running rows only, so the owner
/// condition implies the status. Naming the status would let the planner read the partial lease index, which every
/// claim and completion churns with dead entries until vacuum, instead of looking the row up by primary key: with a
/// busy table that made each completion scan thousands of dead index entries.
/// </remarks>
public sealed class OperationStore(NpgsqlDataSource dataSource)
{
    private const string Columns = """
        id, owner, kind, status, payload::text AS payload, result::text AS result, error::text AS error,
        idempotency_key, request_hash, attempts, max_attempts, next_attempt_at, locked_by, locked_until,
        cancel_requested, progress::text AS progress, trace_parent, created_at, updated_at, completed_at, started_at, version
        """;

    // What an answer shows: everything but the submitted payload and the idempotency key's request hash.
    private const string ViewColumns = """
        id, owner, kind, status, result::text AS result, error::text AS error, attempts, max_attempts, next_attempt_at,
        locked_by, locked_until, cancel_requested, progress::text AS progress, trace_parent, created_at, updated_at, completed_at,
        started_at, version
        """;

    // A finished operation changes only by a retry or a delete; the nodes' caches of finished operations learn of it
    // from this notification. Sent by the statement that makes the change, it is delivered exactly when the change
    // commits: it cannot be lost to a crash or a failed send after the commit (only to a listener that is away, and a
    // listener that reconnects starts with an empty cache). Retries and deletes are rare, so holding NOTIFY's commit
    // lock here costs nothing.
    private const string ForgetNotification = $"pg_notify('{Processing.OperationNotifier.ForgetChannel}', id::text) AS forget_notification";

    static OperationStore() => DefaultTypeMap.MatchNamesWithUnderscores = true;

    /// <summary>
    /// Stores a new pending operation. With an idempotency key, a second insert for the same owner and key stores
    /// nothing and returns null (the unique index decides, so concurrent duplicates create exactly one row).
    /// </summary>
    public async Task<OperationRow?> InsertAsync(NewOperation operation, DateTime now, CancellationToken cancellationToken)
    {
        const string Sql = $"""
            INSERT INTO operations (id, owner, kind, status, payload, attempts, max_attempts, next_attempt_at,
                                    trace_parent, idempotency_key, request_hash, created_at, updated_at)
            VALUES (@Id, @Owner, @Kind, 'pending', CAST(@Payload AS jsonb), 0, @MaxAttempts, @Now,
                    @TraceParent, @IdempotencyKey, @RequestHash, @Now, @Now)
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
            Now = now,
        }, cancellationToken: cancellationToken))).ConfigureAwait(false);
    }

    // The batched insert of operations without idempotency keys, and its settling form: run again after a connection broke
    // before the first one's commit was acknowledged, it stores only the rows that are not there, waiting on the primary
    // key for a first insert that is still committing, and returns the ids it stored.
    private const string InsertManySql = """
        INSERT INTO operations (id, owner, kind, status, payload, attempts, max_attempts, next_attempt_at,
                                locked_by, locked_until, started_at, trace_parent, created_at, updated_at)
        SELECT id, owner, kind, CASE WHEN locked_by IS NULL THEN 'pending' ELSE 'running' END, CAST(payload AS jsonb),
               CASE WHEN locked_by IS NULL THEN 0 ELSE 1 END, max_attempts, created_at,
               locked_by, created_at + CASE WHEN locked_by IS NOT NULL THEN @leaseDuration END,
               CASE WHEN locked_by IS NOT NULL THEN created_at END, trace_parent, created_at, created_at
        FROM unnest(@ids, @owners, @kinds, @payloads, @maxAttempts, @lockedBy, @traceParents, @createdAt)
             AS u(id, owner, kind, payload, max_attempts, locked_by, trace_parent, created_at)
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

    /// <summary>A page of an owner's operations, newest first, after the <paramref name="query"/>'s cursor.</summary>
    public async Task<IReadOnlyList<OperationRow>> ListAsync(string owner, OperationQuery query, CancellationToken cancellationToken)
    {
        const string Sql = $"""
            SELECT {ViewColumns} FROM operations
            WHERE owner = @owner
              AND (@Status::text IS NULL OR status = @Status)
              AND (@Kind::text IS NULL OR kind = @Kind)
              AND (@CreatedAfter::timestamptz IS NULL OR created_at > @CreatedAfter)
              AND (@CreatedBefore::timestamptz IS NULL OR created_at < @CreatedBefore)
              AND (@Before::uuid IS NULL OR id < @Before)
            ORDER BY id DESC
            LIMIT @Limit
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var rows = await connection.QueryAsync<OperationRow>(new CommandDefinition(Sql, new
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

    /// <summary>Cancels a pending operation at once. Null when it was not pending.</summary>
    public async Task<OperationRow?> CancelPendingAsync(Guid id, string owner, string errorJson, DateTime now, CancellationToken cancellationToken)
    {
        const string Sql = $"""
            UPDATE operations
            SET status = 'cancelled', cancel_requested = true, error = CAST(@errorJson AS jsonb), completed_at = @now,
                updated_at = @now, version = version + 1
            WHERE id = @id AND owner = @owner AND status = 'pending'
            RETURNING {ViewColumns}
            """;
        return await WriteOptionalAsync(Sql, new { id, owner, errorJson, now }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Asks the worker running the operation to cancel it. Null when it was not running.</summary>
    public async Task<OperationRow?> RequestCancelAsync(Guid id, string owner, DateTime now, CancellationToken cancellationToken)
    {
        const string Sql = $"""
            UPDATE operations
            SET cancel_requested = true, updated_at = @now, version = version + 1
            WHERE id = @id AND owner = @owner AND status = 'running' AND NOT cancel_requested
            RETURNING {ViewColumns}
            """;
        return await WriteOptionalAsync(Sql, new { id, owner, now }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Replays a failed or cancelled operation: back to pending with fresh attempts. Null when it was in another state, or
    /// no longer at <paramref name="expectedVersion"/> (the version the caller saw it failed or cancelled at).
    /// Tells every node to drop its cached copy in the same transaction (see <see cref="ForgetNotification"/>).
    /// </summary>
    public async Task<OperationRow?> RetryAsync(Guid id, string owner, int expectedVersion, DateTime now, CancellationToken cancellationToken)
    {
        const string Sql = $"""
            WITH retried AS (
                UPDATE operations
                SET status = 'pending', attempts = 0, next_attempt_at = @now, result = NULL, error = NULL, progress = NULL,
                    cancel_requested = false, completed_at = NULL, started_at = NULL, updated_at = @now, version = version + 1
                WHERE id = @id AND owner = @owner AND status IN ('failed', 'cancelled') AND version = @expectedVersion
                RETURNING {ViewColumns})
            SELECT retried.*, {ForgetNotification} FROM retried
            """;
        return await WriteOptionalAsync(Sql, new { id, owner, expectedVersion, now }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Forgets a terminal operation. False when it was not terminal (or not there). Tells every node to drop its cached
    /// copy in the same transaction (see <see cref="ForgetNotification"/>).
    /// </summary>
    public async Task<bool> DeleteTerminalAsync(Guid id, string owner, CancellationToken cancellationToken)
    {
        const string Sql = $"""
            WITH deleted AS (
                DELETE FROM operations WHERE id = @id AND owner = @owner AND status IN ('succeeded', 'failed', 'cancelled')
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

    /// <summary>Per kind: how many operations are due and waiting, and the mean run time of recent successes.</summary>
    public async Task<IReadOnlyList<KindStatistics>> ReadKindStatisticsAsync(DateTime now, DateTime since, CancellationToken cancellationToken)
    {
        const string Sql = """
            WITH recent AS (
                SELECT kind, extract(epoch FROM completed_at - started_at) AS run_seconds
                FROM operations
                WHERE completed_at > @since AND status = 'succeeded' AND started_at IS NOT NULL
                ORDER BY completed_at DESC
                LIMIT 2000),
            runs AS (SELECT kind, avg(run_seconds)::float8 AS mean_run_seconds FROM recent GROUP BY kind),
            queue AS (SELECT kind, count(*) AS pending FROM operations
                      WHERE status = 'pending' AND next_attempt_at <= @now GROUP BY kind)
            SELECT coalesce(runs.kind, queue.kind) AS kind, coalesce(queue.pending, 0) AS pending, runs.mean_run_seconds
            FROM runs FULL JOIN queue ON runs.kind = queue.kind
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var rows = await connection.QueryAsync<KindStatistics>(new CommandDefinition(Sql, new { now, since }, cancellationToken: cancellationToken))
            .ConfigureAwait(false);
        return rows.AsList();
    }

    public async Task<OperationRow?> FindAsync(Guid id, string owner, CancellationToken cancellationToken)
    {
        const string Sql = $"SELECT {ViewColumns} FROM operations WHERE id = @id AND owner = @owner";
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.QuerySingleOrDefaultAsync<OperationRow>(
            new CommandDefinition(Sql, new { id, owner }, cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>
    /// Claims up to <paramref name="limit"/> due pending operations for <paramref name="nodeId"/> in one
    /// statement. Rows another claimer holds are skipped, not waited for.
    /// </summary>
    /// <remarks>
    /// The locking subquery is a MATERIALIZED CTE: written as <c>WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)</c>,
    /// a nested-loop semi join can run the subquery once per outer row and claim far more than <c>n</c> rows.
    /// The outer WHERE names only the id: the CTE's row locks already guarantee the rows are pending (a locked row's
    /// condition is rechecked when the lock is taken), and a status condition there lets the planner scan the whole
    /// partial index of pending rows instead of looking each id up by primary key.
    /// </remarks>
    public async Task<IReadOnlyList<ClaimedOperation>> ClaimAsync(string nodeId, int limit, DateTime now, DateTime leaseUntil,
        CancellationToken cancellationToken)
    {
        const string Sql = """
            WITH claimable AS MATERIALIZED (
                SELECT id FROM operations
                WHERE status = 'pending' AND next_attempt_at <= @now
                ORDER BY next_attempt_at
                LIMIT @limit
                FOR UPDATE SKIP LOCKED)
            UPDATE operations AS o
            SET status = 'running', attempts = o.attempts + 1, locked_by = @nodeId, locked_until = @leaseUntil,
                started_at = @now, updated_at = @now, version = o.version + 1
            FROM claimable
            WHERE o.id = claimable.id
            RETURNING o.id, o.kind, o.payload::text AS payload, o.attempts, o.max_attempts, o.trace_parent
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var claimed = await WriteFailure.SentOnAsync(connection, c => c.QueryAsync<ClaimedOperation>(new CommandDefinition(Sql,
            new { nodeId, limit, now, leaseUntil }, cancellationToken: cancellationToken))).ConfigureAwait(false);
        return claimed.AsList();
    }

    /// <summary>
    /// Settles a <see cref="ClaimAsync"/> whose commit outcome is unknown: the operations that claim took, found by the
    /// node and the lease expiry it wrote (each claim writes its own). Empty when it was not committed.
    /// </summary>
    public async Task<IReadOnlyList<ClaimedOperation>> FindClaimedAsync(string nodeId, DateTime leaseUntil, CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT id, kind, payload::text AS payload, attempts, max_attempts, trace_parent FROM operations
            WHERE locked_by = @nodeId AND locked_until = @leaseUntil
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var claimed = await connection.QueryAsync<ClaimedOperation>(new CommandDefinition(Sql,
            new { nodeId, leaseUntil }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return claimed.AsList();
    }

    /// <summary>
    /// Stores the result of a transactional handler's successful attempt in the handler's <paramref name="transaction"/>
    /// (the caller commits, or rolls back when false). False when the lease was lost meanwhile. Other handlers'
    /// successes go through <see cref="CompleteManyAsync"/>.
    /// </summary>
    public static async Task<bool> CompleteInTransactionAsync(Guid id, string nodeId, int attempt, string resultJson, DateTime now,
        NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        const string Sql = """
            UPDATE operations
            SET status = 'succeeded', result = CAST(@resultJson AS jsonb), error = NULL, locked_by = NULL, locked_until = NULL,
                completed_at = @now, updated_at = @now, version = version + 1
            WHERE id = @id AND locked_by = @nodeId AND attempts = @attempt
            """;
        return await transaction.Connection!.ExecuteAsync(new CommandDefinition(Sql, new { id, nodeId, attempt, resultJson, now },
            transaction, cancellationToken: cancellationToken)).ConfigureAwait(false) == 1;
    }

    /// <summary>
    /// Stores the results of successful attempts in one statement and one commit, each fenced like
    /// <see cref="CompleteInTransactionAsync"/>. Returns the rows whose result was stored; the others had lost their lease.
    /// </summary>
    public async Task<IReadOnlyList<OperationRow>> CompleteManyAsync(IReadOnlyList<OperationCompletion> completions, CancellationToken cancellationToken)
    {
        // Returns the stored rows as answers show them, so that requests waiting on this node need not read them again.
        const string Sql = """
            UPDATE operations AS o
            SET status = 'succeeded', result = CAST(u.result AS jsonb), error = NULL, locked_by = NULL, locked_until = NULL,
                completed_at = u.completed_at, updated_at = u.completed_at, version = o.version + 1
            FROM unnest(@ids, @nodeIds, @attempts, @results, @completedAt) AS u(id, node_id, attempt, result, completed_at)
            WHERE o.id = u.id AND o.locked_by = u.node_id AND o.attempts = u.attempt
            RETURNING o.id, o.owner, o.kind, o.status, o.result::text AS result, o.error::text AS error, o.attempts, o.max_attempts,
                      o.next_attempt_at, o.locked_by, o.locked_until, o.cancel_requested, o.progress::text AS progress,
                      o.trace_parent, o.created_at, o.updated_at, o.completed_at, o.started_at, o.version
            """;
        int count = completions.Count;
        var ids = new Guid[count];
        var nodeIds = new string[count];
        var attempts = new int[count];
        var results = new string[count];
        var completedAt = new DateTime[count];
        for (int i = 0; i < count; i++)
        {
            var completion = completions[i];
            ids[i] = completion.Id;
            nodeIds[i] = completion.NodeId;
            attempts[i] = completion.Attempt;
            results[i] = completion.ResultJson;
            completedAt[i] = completion.CompletedAt;
        }

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var stored = await WriteFailure.SentOnAsync(connection, c => c.QueryAsync<OperationRow>(new CommandDefinition(Sql,
            new { ids, nodeIds, attempts, results, completedAt }, cancellationToken: cancellationToken))).ConfigureAwait(false);
        return stored.AsList();
    }

    /// <summary>
    /// Of the given successful attempts, those whose result is stored: the operation succeeded on that attempt with that
    /// result. Settles a completion whose commit outcome is unknown. Each row is read under a share lock, so a completion
    /// still committing on a broken connection is waited for, not read from before it.
    /// </summary>
    public async Task<IReadOnlyList<OperationRow>> FindSucceededAsync(IReadOnlyList<OperationCompletion> completions,
        CancellationToken cancellationToken)
    {
        const string Sql = $"""
            WITH locked AS MATERIALIZED (
                SELECT {ViewColumns}, result AS result_value FROM operations WHERE id = ANY(@ids) FOR SHARE)
            SELECT locked.id, locked.owner, locked.kind, locked.status, locked.result, locked.error, locked.attempts,
                   locked.max_attempts, locked.next_attempt_at, locked.locked_by, locked.locked_until, locked.cancel_requested,
                   locked.progress, locked.trace_parent, locked.created_at, locked.updated_at, locked.completed_at,
                   locked.started_at, locked.version
            FROM locked JOIN unnest(@ids, @attempts, @results) AS u(id, attempt, result) ON u.id = locked.id
            WHERE locked.status = 'succeeded' AND locked.attempts = u.attempt AND locked.result_value = CAST(u.result AS jsonb)
            """;
        var ids = completions.Select(c => c.Id).ToArray();
        var attempts = completions.Select(c => c.Attempt).ToArray();
        var results = completions.Select(c => c.ResultJson).ToArray();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var rows = await connection.QueryAsync<OperationRow>(new CommandDefinition(Sql, new { ids, attempts, results },
            cancellationToken: cancellationToken)).ConfigureAwait(false);
        return rows.AsList();
    }

    /// <summary>
    /// What an operation's last transition left, read under a share lock (see <see cref="FindSucceededAsync"/>): settles
    /// an outcome write whose commit outcome is unknown. Null when the operation is not there.
    /// </summary>
    public async Task<OperationOutcome?> ReadOutcomeAsync(Guid id, CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT status, attempts, locked_by AS lockedby, error ->> 'type' AS errortype FROM operations WHERE id = @id FOR SHARE
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.QuerySingleOrDefaultAsync<OperationOutcome>(new CommandDefinition(Sql, new { id },
            cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>Ends the operation <c>failed</c> with a problem object. False when the lease was lost meanwhile.</summary>
    public async Task<bool> FailAsync(Guid id, string nodeId, int attempt, string errorJson, DateTime now,
        CancellationToken cancellationToken)
    {
        const string Sql = """
            UPDATE operations
            SET status = 'failed', error = CAST(@errorJson AS jsonb), result = NULL, locked_by = NULL, locked_until = NULL,
                completed_at = @now, updated_at = @now, version = version + 1
            WHERE id = @id AND locked_by = @nodeId AND attempts = @attempt
            """;
        return await ExecuteFencedAsync(Sql, new { id, nodeId, attempt, errorJson, now }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Returns the operation to <c>pending</c> until <paramref name="nextAttemptAt"/>, or ends it <c>cancelled</c> if
    /// cancellation was requested meanwhile. False when the lease was lost meanwhile.
    /// </summary>
    public async Task<bool> ScheduleRetryAsync(Guid id, string nodeId, int attempt, DateTime nextAttemptAt, DateTime now,
        string cancelledErrorJson, CancellationToken cancellationToken)
    {
        const string Sql = """
            UPDATE operations
            SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END,
                error = CASE WHEN cancel_requested THEN CAST(@cancelledErrorJson AS jsonb) END,
                completed_at = CASE WHEN cancel_requested THEN @now END,
                next_attempt_at = @nextAttemptAt, locked_by = NULL, locked_until = NULL,
                updated_at = @now, version = version + 1
            WHERE id = @id AND locked_by = @nodeId AND attempts = @attempt
            """;
        return await ExecuteFencedAsync(Sql, new { id, nodeId, attempt, nextAttemptAt, now, cancelledErrorJson }, cancellationToken)
            .ConfigureAwait(false);
    }

    /// <summary>Ends a running operation <c>cancelled</c> after its handler stopped on request. False when the lease was lost meanwhile.</summary>
    public async Task<bool> MarkCancelledAsync(Guid id, string nodeId, int attempt, string errorJson, DateTime now,
        CancellationToken cancellationToken)
    {
        const string Sql = """
            UPDATE operations
            SET status = 'cancelled', error = CAST(@errorJson AS jsonb), result = NULL, locked_by = NULL, locked_until = NULL,
                completed_at = @now, updated_at = @now, version = version + 1
            WHERE id = @id AND locked_by = @nodeId AND attempts = @attempt
            """;
        return await ExecuteFencedAsync(Sql, new { id, nodeId, attempt, errorJson, now }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Publishes a running attempt's progress. False when the lease was lost meanwhile.</summary>
    public async Task<bool> ReportProgressAsync(Guid id, string nodeId, int attempt, string progressJson, DateTime now,
        CancellationToken cancellationToken)
    {
        const string Sql = """
            UPDATE operations
            SET progress = CAST(@progressJson AS jsonb), updated_at = @now, version = version + 1
            WHERE id = @id AND locked_by = @nodeId AND attempts = @attempt
            """;
        return await ExecuteFencedAsync(Sql, new { id, nodeId, attempt, progressJson, now }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Extends the leases of the given running operations; returns the ids this node still holds, with whether
    /// cancellation was requested for each.
    /// </summary>
    public async Task<IReadOnlyList<RenewedLease>> RenewLeasesAsync(string nodeId, IReadOnlyCollection<Guid> ids, DateTime leaseUntil,
        CancellationToken cancellationToken)
    {
        // A lease renewal is not a change a poller can see, so it leaves version and updated_at alone.
        const string Sql = """
            UPDATE operations SET locked_until = @leaseUntil
            WHERE id = ANY(@ids) AND locked_by = @nodeId
            RETURNING id, cancel_requested
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var renewed = await connection.QueryAsync<RenewedLease>(new CommandDefinition(Sql,
            new { nodeId, ids = ids.ToArray(), leaseUntil }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return renewed.AsList();
    }

    /// <summary>
    /// Returns running operations whose lease expired before <paramref name="now"/> to <c>pending</c>, or ends
    /// them <c>failed</c> when their attempts are used up (<c>cancelled</c> when that was requested). Returns the rescued rows.
    /// </summary>
    public async Task<IReadOnlyList<RescuedOperation>> RescueExpiredLeasesAsync(DateTime now, int batchSize, string exhaustedErrorJson,
        string cancelledErrorJson, CancellationToken cancellationToken)
    {
        const string Sql = """
            WITH expired AS MATERIALIZED (
                SELECT id FROM operations
                WHERE status = 'running' AND locked_until < @now
                ORDER BY locked_until
                LIMIT @batchSize
                FOR UPDATE SKIP LOCKED)
            UPDATE operations AS o
            SET status = CASE WHEN o.cancel_requested THEN 'cancelled'
                              WHEN o.attempts >= o.max_attempts THEN 'failed' ELSE 'pending' END,
                error = CASE WHEN o.cancel_requested THEN CAST(@cancelledErrorJson AS jsonb)
                             WHEN o.attempts >= o.max_attempts THEN CAST(@exhaustedErrorJson AS jsonb) END,
                completed_at = CASE WHEN o.cancel_requested OR o.attempts >= o.max_attempts THEN @now END,
                next_attempt_at = @now, locked_by = NULL, locked_until = NULL, updated_at = @now, version = o.version + 1
            FROM expired
            WHERE o.id = expired.id
              AND o.status = 'running' AND o.locked_until < @now
            RETURNING o.id, o.status
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var rescued = await connection.QueryAsync<RescuedOperation>(new CommandDefinition(Sql,
            new { now, batchSize, exhaustedErrorJson, cancelledErrorJson }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return rescued.AsList();
    }

    /// <summary>
    /// Gives every operation <paramref name="nodeId"/> still holds back to <c>pending</c>, due at once. The
    /// interrupted attempt is not counted: the operation did not fail, its worker stopped.
    /// </summary>
    public async Task<int> ReleaseAsync(string nodeId, DateTime now, CancellationToken cancellationToken)
    {
        const string Sql = """
            UPDATE operations
            SET status = 'pending', attempts = GREATEST(attempts - 1, 0), next_attempt_at = @now,
                locked_by = NULL, locked_until = NULL, updated_at = @now, version = version + 1
            WHERE status = 'running' AND locked_by = @nodeId
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.ExecuteAsync(new CommandDefinition(Sql, new { nodeId, now }, cancellationToken: cancellationToken))
            .ConfigureAwait(false);
    }

    /// <summary>A conditional change of one row that returns it: null when the condition matched nothing.</summary>
    /// <summary>
    /// Returns to <c>pending</c>, their attempt uncounted, operations this node stored already claimed at insert but never
    /// started (their insert's commit outcome was unknown). Rows not there, or no longer held on that first attempt, are
    /// left alone. Returns how many were released.
    /// </summary>
    public async Task<int> ReleaseUnstartedAsync(string nodeId, IReadOnlyCollection<Guid> ids, DateTime now, CancellationToken cancellationToken)
    {
        const string Sql = """
            UPDATE operations
            SET status = 'pending', attempts = 0, next_attempt_at = @now, locked_by = NULL, locked_until = NULL, started_at = NULL,
                updated_at = @now, version = version + 1
            WHERE id = ANY(@ids) AND locked_by = @nodeId AND attempts = 1
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.ExecuteAsync(new CommandDefinition(Sql, new { nodeId, ids = ids.ToArray(), now },
            cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    private async Task<OperationRow?> WriteOptionalAsync(string sql, object parameters, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await WriteFailure.SentOnAsync(connection, c => c.QuerySingleOrDefaultAsync<OperationRow>(
            new CommandDefinition(sql, parameters, cancellationToken: cancellationToken))).ConfigureAwait(false);
    }

    private async Task<bool> ExecuteFencedAsync(string sql, object parameters, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        int rows = await WriteFailure.SentOnAsync(connection, c => c.ExecuteAsync(
            new CommandDefinition(sql, parameters, cancellationToken: cancellationToken))).ConfigureAwait(false);
        return rows == 1;
    }
}
