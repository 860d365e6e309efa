using Dapper;
using Npgsql;
using PollingApi.Operations.Model;

namespace PollingApi.Operations.Storage;

/// <summary>
/// The statements of a worker's attempts on the <c>operations</c> table: claim, complete, fail, retry later, report
/// progress, renew and release leases, rescue expired ones. Each change of a running operation is fenced by the
/// claiming node and attempt, so a worker that lost its lease cannot overwrite the outcome of the node that took the
/// operation over.
/// </summary>
/// <remarks>
/// The fence of a running operation is <c>locked_by = node AND attempts = attempt</c>, without <c>status = 'running'</c>:
/// the table's <c>operations_lease_check</c> constraint sets <c>locked_by</c> on running rows only, so the owner
/// condition implies the status. Naming the status would let the planner read the partial lease index, which every
/// claim and completion churns with dead entries until vacuum, instead of looking the row up by primary key: with a
/// busy table that made each completion scan thousands of dead index entries.
/// </remarks>
internal sealed class AttemptStore(NpgsqlDataSource dataSource)
{
    private const string ViewColumns = OperationColumns.View;

    static AttemptStore() => RowMapping.EnsureRegistered();

    /// <summary>
    /// Claims up to <paramref name="limit"/> due pending operations for <paramref name="nodeId"/> in one statement, taking
    /// turns between tenants and keeping to the <paramref name="rules"/> (paused kinds, cluster-wide caps). Rows another
    /// claimer holds are skipped, not waited for.
    /// </summary>
    /// <remarks>
    /// <para>The pending operations form one queue per tenant and kind (the index <c>operations_queue_idx</c>), each in
    /// claim order: due time moved earlier by its priority (<c>operations_claim_key</c>). The statement finds the queues by
    /// skipping through the index (one descent per queue), takes the head of each, and hands out turns: every tenant's
    /// first candidate, then every tenant's second, and so on, earliest claim key first within a turn. One tenant's backlog
    /// of thousands therefore delays another tenant's first operation by one claim at most. Each queue offers an equal
    /// share of the batch (rounded up), so the rows locked stay near the batch size; when a queue gave its whole share,
    /// the claimed rows say <see cref="ClaimedOperation.MoreDue"/> and the worker claims again at once.</para>
    /// <para>With caps, the claims of all nodes take turns on one advisory lock, and each counts what is running only
    /// after it holds the lock: two nodes never both see the last free place of a cap.</para>
    /// <para>The locking subqueries sit in a MATERIALIZED CTE: written as <c>WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)</c>,
    /// a nested-loop semi join can run them once per outer row and claim far more than <c>n</c> rows. The outer WHERE
    /// names only the id: the row locks already guarantee the rows are pending (a locked row's condition is rechecked when
    /// the lock is taken), and a status condition there lets the planner scan the partial index instead of looking each
    /// id up by primary key.</para>
    /// </remarks>
    public async Task<IReadOnlyList<ClaimedOperation>> ClaimAsync(string nodeId, int limit, DateTime now, DateTime leaseUntil,
        ClaimRules rules, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(rules);
        var parameters = new
        {
            nodeId, limit, now, leaseUntil, paused = rules.PausedKinds, cappedKinds = rules.CappedKinds, kindCaps = rules.KindCaps,
            tenantCap = rules.TenantCap, capTenants = rules.CapTenants, tenantCaps = rules.TenantCaps,
        };
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        if (!rules.HasCaps)
        {
            var claimed = await WriteFailure.SentOnAsync(connection, c => c.QueryAsync<ClaimedOperation>(new CommandDefinition(ClaimSql,
                parameters, cancellationToken: cancellationToken))).ConfigureAwait(false);
            return claimed.AsList();
        }

        // Two statements sent together run in one implicit transaction: the lock is held until both are done, and the
        // claim, a statement of its own, reads what is running only once it holds the lock. One round trip.
        return await WriteFailure.SentOnAsync(connection, async c =>
        {
            await using var results = await c.QueryMultipleAsync(new CommandDefinition(CappedClaimBatchSql,
                new { parameters.nodeId, parameters.limit, parameters.now, parameters.leaseUntil, parameters.paused, parameters.cappedKinds,
                      parameters.kindCaps, parameters.tenantCap, parameters.capTenants, parameters.tenantCaps, key = CappedClaimLockKey },
                cancellationToken: cancellationToken)).ConfigureAwait(false);
            await results.ReadAsync().ConfigureAwait(false);
            return (IReadOnlyList<ClaimedOperation>)(await results.ReadAsync<ClaimedOperation>().ConfigureAwait(false)).AsList();
        }).ConfigureAwait(false);
    }

    /// <summary>Claims as <see cref="ClaimAsync(string, int, DateTime, DateTime, ClaimRules, CancellationToken)"/> with no rules.</summary>
    public Task<IReadOnlyList<ClaimedOperation>> ClaimAsync(string nodeId, int limit, DateTime now, DateTime leaseUntil,
        CancellationToken cancellationToken) =>
        ClaimAsync(nodeId, limit, now, leaseUntil, ClaimRules.None, cancellationToken);

    private const long CappedClaimLockKey = 0x506f6c6c_43617073;

    private const string CappedClaimBatchSql = "SELECT pg_advisory_xact_lock(@key);\n" + CappedClaimSql;

    // The queues with pending rows, one index descent each (paused kinds left out), and the first due, unlocked rows of
    // each: an equal share of the batch per queue, so that a claim locks about as many rows as it takes however many
    // tenants wait. Ranked within their queue and then within their tenant. A due row's claim key is never later than
    // @now (the key is the due time moved earlier), so bounding the key ends each queue's index scan at @now: rows
    // scheduled further ahead are never read (without the bound, a queue with fewer due rows than its share was read to
    // its end, every scheduled row fetched from the heap to be filtered out).
    private const string CandidatesSql = """
        WITH RECURSIVE queues AS (
            (SELECT owner, kind FROM operations WHERE status = 'pending' ORDER BY owner, kind LIMIT 1)
            UNION ALL
            SELECT next.owner, next.kind
            FROM queues AS q CROSS JOIN LATERAL (
                SELECT owner, kind FROM operations
                WHERE status = 'pending' AND (owner, kind) > (q.owner, q.kind)
                ORDER BY owner, kind
                LIMIT 1) AS next),
        open_queues AS MATERIALIZED (SELECT owner, kind FROM queues WHERE kind <> ALL(@paused)),
        share AS MATERIALIZED (SELECT ceil(@limit::float8 / greatest(count(*), 1))::int AS rows FROM open_queues),
        candidates AS MATERIALIZED (
            SELECT c.id, q.owner, q.kind, c.claim_key,
                   row_number() OVER (PARTITION BY q.owner, q.kind ORDER BY c.claim_key) AS queue_turn
            FROM open_queues AS q CROSS JOIN LATERAL (
                SELECT id, operations_claim_key(next_attempt_at, priority) AS claim_key FROM operations
                WHERE status = 'pending' AND owner = q.owner AND kind = q.kind AND next_attempt_at <= @now
                  AND operations_claim_key(next_attempt_at, priority) <= @now
                ORDER BY operations_claim_key(next_attempt_at, priority)
                LIMIT (SELECT rows FROM share)
                FOR UPDATE SKIP LOCKED) AS c),
        turns AS (
            SELECT id, owner, kind, claim_key, row_number() OVER (PARTITION BY owner ORDER BY queue_turn, claim_key) AS turn
            FROM candidates),
        """;

    private const string ClaimUpdateSql = """
        UPDATE operations AS o
        SET status = 'running', attempts = o.attempts + 1, locked_by = @nodeId, locked_until = @leaseUntil,
            started_at = @now, updated_at = @now, version = o.version + 1
        FROM picked
        WHERE o.id = picked.id
        RETURNING o.id, o.owner, o.kind, o.payload::text AS payload, o.attempts, o.max_attempts, o.trace_parent,
                  EXISTS (SELECT 1 FROM candidates WHERE queue_turn = (SELECT rows FROM share)) AS more_due
        """;

    internal const string ClaimSql = CandidatesSql + """
        picked AS (SELECT id FROM turns ORDER BY turn, claim_key LIMIT @limit)

        """ + ClaimUpdateSql;

    // The caps, counted under the advisory lock: a kind's candidates beyond its free places are dropped (tenants still
    // taking turns), then a tenant's beyond its own.
    internal const string CappedClaimSql = CandidatesSql + """
        busy AS MATERIALIZED (SELECT owner, kind FROM operations WHERE status = 'running'),
        kind_room AS (
            SELECT cap.kind, cap.max_concurrency - (SELECT count(*) FROM busy WHERE busy.kind = cap.kind) AS room
            FROM unnest(@cappedKinds::text[], @kindCaps::int[]) AS cap(kind, max_concurrency)),
        within_kinds AS (
            SELECT t.id, t.owner, t.turn, t.claim_key
            FROM (SELECT turns.*, row_number() OVER (PARTITION BY kind ORDER BY turn, claim_key) AS kind_turn FROM turns) AS t
            LEFT JOIN kind_room AS r ON r.kind = t.kind
            WHERE r.room IS NULL OR t.kind_turn <= r.room),
        tenant_room AS (
            SELECT owners.owner,
                   coalesce((SELECT cap.max_concurrency FROM unnest(@capTenants::text[], @tenantCaps::int[]) AS cap(tenant, max_concurrency)
                             WHERE cap.tenant = owners.owner), @tenantCap::int)
                   - (SELECT count(*) FROM busy WHERE busy.owner = owners.owner) AS room
            FROM (SELECT DISTINCT owner FROM within_kinds) AS owners),
        picked AS (
            SELECT t.id
            FROM (SELECT within_kinds.*, row_number() OVER (PARTITION BY owner ORDER BY turn, claim_key) AS tenant_turn FROM within_kinds) AS t
            JOIN tenant_room AS r ON r.owner = t.owner
            WHERE r.room IS NULL OR t.tenant_turn <= r.room
            ORDER BY t.turn, t.claim_key
            LIMIT @limit)

        """ + ClaimUpdateSql;

    /// <summary>
    /// Settles a <see cref="ClaimAsync(string, int, DateTime, DateTime, ClaimRules, CancellationToken)"/> whose commit outcome is unknown: the operations that claim took, found by the
    /// node and the lease expiry it wrote (each claim writes its own). Empty when it was not committed.
    /// </summary>
    public async Task<IReadOnlyList<ClaimedOperation>> FindClaimedAsync(string nodeId, DateTime leaseUntil, CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT id, owner, kind, payload::text AS payload, attempts, max_attempts, trace_parent FROM operations
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
    public static async Task<bool> CompleteInTransactionAsync(OperationCompletion completion, NpgsqlTransaction transaction,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(completion);
        ArgumentNullException.ThrowIfNull(transaction);
        const string Sql = """
            UPDATE operations
            SET status = 'succeeded', result = CAST(@ResultJson AS jsonb), error = NULL, locked_by = NULL, locked_until = NULL,
                completed_at = @CompletedAt, updated_at = @CompletedAt, version = version + 1,
                attempt_history = operations_attempt_ended(attempt_history, attempts, started_at, @CompletedAt, 'succeeded', NULL,
                                                           locked_by, trace_parent)
            WHERE id = @Id AND locked_by = @NodeId AND attempts = @Attempt
            """;
        return await transaction.Connection!.ExecuteAsync(new CommandDefinition(Sql, completion, transaction,
            cancellationToken: cancellationToken)).ConfigureAwait(false) == 1;
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
                completed_at = u.completed_at, updated_at = u.completed_at, version = o.version + 1,
                attempt_history = operations_attempt_ended(o.attempt_history, o.attempts, o.started_at, u.completed_at, 'succeeded', NULL,
                                                           o.locked_by, o.trace_parent)
            FROM unnest(@ids, @nodeIds, @attempts, @results, @completedAt) AS u(id, node_id, attempt, result, completed_at)
            WHERE o.id = u.id AND o.locked_by = u.node_id AND o.attempts = u.attempt
            RETURNING o.id, o.owner, o.kind, o.status, o.result::text AS result, o.error::text AS error, o.attempts, o.max_attempts,
                      o.next_attempt_at, o.locked_by, o.locked_until, o.cancel_requested, o.progress::text AS progress,
                      o.trace_parent, o.created_at, o.updated_at, o.completed_at, o.started_at, o.version, o.scheduled_at, o.priority
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
                   locked.started_at, locked.version, locked.scheduled_at, locked.priority
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

    /// <summary>
    /// Ends a running operation <paramref name="status"/> (<c>failed</c>, or <c>cancelled</c> after its handler stopped on
    /// request) with a problem object. False when the lease was lost meanwhile.
    /// </summary>
    public async Task<bool> EndAsync(Guid id, string nodeId, int attempt, string status, string errorJson, string outcome, DateTime now,
        CancellationToken cancellationToken)
    {
        if (status is not (OperationStatus.Failed or OperationStatus.Cancelled))
        {
            throw new ArgumentOutOfRangeException(nameof(status), status, "An attempt ends an operation failed or cancelled.");
        }

        const string Sql = """
            UPDATE operations
            SET status = @status, error = CAST(@errorJson AS jsonb), result = NULL, locked_by = NULL, locked_until = NULL,
                completed_at = @now, updated_at = @now, version = version + 1,
                attempt_history = operations_attempt_ended(attempt_history, attempts, started_at, @now, @outcome, CAST(@errorJson AS jsonb),
                                                           locked_by, trace_parent)
            WHERE id = @id AND locked_by = @nodeId AND attempts = @attempt
            """;
        return await ExecuteFencedAsync(Sql, new { id, nodeId, attempt, status, errorJson, outcome, now }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Returns the operation to <c>pending</c> until <paramref name="nextAttemptAt"/>, or ends it <c>cancelled</c> if
    /// cancellation was requested meanwhile. False when the lease was lost meanwhile.
    /// </summary>
    public async Task<bool> ScheduleRetryAsync(Guid id, string nodeId, int attempt, DateTime nextAttemptAt, DateTime now,
        string cancelledErrorJson, string attemptErrorJson, CancellationToken cancellationToken, string outcome = "transient_failure")
    {
        const string Sql = """
            UPDATE operations
            SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END,
                error = CASE WHEN cancel_requested THEN CAST(@cancelledErrorJson AS jsonb) END,
                completed_at = CASE WHEN cancel_requested THEN @now END,
                next_attempt_at = @nextAttemptAt, locked_by = NULL, locked_until = NULL,
                updated_at = @now, version = version + 1,
                attempt_history = operations_attempt_ended(attempt_history, attempts, started_at, @now, @outcome,
                                                           CAST(@attemptErrorJson AS jsonb), locked_by, trace_parent)
            WHERE id = @id AND locked_by = @nodeId AND attempts = @attempt
            """;
        return await ExecuteFencedAsync(Sql, new { id, nodeId, attempt, nextAttemptAt, now, cancelledErrorJson, attemptErrorJson, outcome }, cancellationToken)
            .ConfigureAwait(false);
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
    /// cancellation was requested for each. A row another statement has locked is skipped, not waited for: that is this
    /// node's own outcome being written (or a cancellation being requested), and the next renewal takes it if it is
    /// still running then.
    /// </summary>
    /// <remarks>
    /// Waiting would put the renewal, which locks all of the node's running rows, in a lock-order cycle with the
    /// group-committed completion of some of them: under load PostgreSQL then broke a deadlock every few seconds, after
    /// its deadlock timeout (1 s), failing either a renewal or a batch of outcomes, on a 4 s lease long enough for
    /// leases of a busy node to be rescued (fault scenario network-stall at 10,000 operations).
    /// </remarks>
    public async Task<IReadOnlyList<RenewedLease>> RenewLeasesAsync(string nodeId, IReadOnlyCollection<Guid> ids, DateTime leaseUntil,
        CancellationToken cancellationToken)
    {
        // A lease renewal is not a change a poller can see, so it leaves version and updated_at alone.
        const string Sql = """
            WITH held AS MATERIALIZED (
                SELECT id FROM operations
                WHERE id = ANY(@ids) AND locked_by = @nodeId
                FOR UPDATE SKIP LOCKED)
            UPDATE operations AS o SET locked_until = @leaseUntil
            FROM held
            WHERE o.id = held.id
            RETURNING o.id, o.cancel_requested
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var renewed = await connection.QueryAsync<RenewedLease>(new CommandDefinition(Sql,
            new { nodeId, ids = ids.ToArray(), leaseUntil }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return renewed.AsList();
    }

    /// <summary>
    /// Hands back operations whose attempts this node gave up without storing an outcome (their leases could not be
    /// renewed, or their outcome could not be written in time): each still held by this node on that attempt returns to
    /// <c>pending</c>, or ends <c>failed</c> when its attempts are used up (<c>cancelled</c> when that was requested), as
    /// lease rescue would end it once the lease ran out. Returns the rows handed back; the others are no longer this
    /// node's.
    /// </summary>
    public async Task<IReadOnlyList<RescuedOperation>> HandBackAsync(string nodeId, IReadOnlyCollection<(Guid Id, int Attempt)> attempts,
        DateTime now, string exhaustedErrorJson, string cancelledErrorJson, string leaseLostErrorJson, CancellationToken cancellationToken)
    {
        const string Sql = """
            UPDATE operations AS o
            SET status = CASE WHEN o.cancel_requested THEN 'cancelled'
                              WHEN o.attempts >= o.max_attempts THEN 'failed' ELSE 'pending' END,
                error = CASE WHEN o.cancel_requested THEN CAST(@cancelledErrorJson AS jsonb)
                             WHEN o.attempts >= o.max_attempts THEN CAST(@exhaustedErrorJson AS jsonb) END,
                completed_at = CASE WHEN o.cancel_requested OR o.attempts >= o.max_attempts THEN @now END,
                next_attempt_at = @now, locked_by = NULL, locked_until = NULL, updated_at = @now, version = o.version + 1,
                attempt_history = operations_attempt_ended(o.attempt_history, o.attempts, o.started_at, @now, 'lease_lost',
                                                           CAST(@leaseLostErrorJson AS jsonb), o.locked_by, o.trace_parent)
            FROM unnest(@ids, @attemptNumbers) AS given_up(id, attempt)
            WHERE o.id = given_up.id AND o.locked_by = @nodeId AND o.attempts = given_up.attempt
            RETURNING o.id, o.kind, o.status
            """;
        var ids = attempts.Select(a => a.Id).ToArray();
        var attemptNumbers = attempts.Select(a => a.Attempt).ToArray();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var handedBack = await connection.QueryAsync<RescuedOperation>(new CommandDefinition(Sql,
            new { nodeId, ids, attemptNumbers, now, exhaustedErrorJson, cancelledErrorJson, leaseLostErrorJson },
            cancellationToken: cancellationToken)).ConfigureAwait(false);
        return handedBack.AsList();
    }

    /// <summary>One round trip: completes when the database answers this node.</summary>
    public async Task PingAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT 1");
        await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Returns running operations whose lease expired before <paramref name="now"/> to <c>pending</c>, or ends
    /// them <c>failed</c> when their attempts are used up (<c>cancelled</c> when that was requested). Returns the rescued rows.
    /// </summary>
    public async Task<IReadOnlyList<RescuedOperation>> RescueExpiredLeasesAsync(DateTime now, int batchSize, string exhaustedErrorJson,
        string cancelledErrorJson, string leaseLostErrorJson, CancellationToken cancellationToken)
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
                next_attempt_at = @now, locked_by = NULL, locked_until = NULL, updated_at = @now, version = o.version + 1,
                attempt_history = operations_attempt_ended(o.attempt_history, o.attempts, o.started_at, @now, 'lease_lost',
                                                           CAST(@leaseLostErrorJson AS jsonb), o.locked_by, o.trace_parent)
            FROM expired
            WHERE o.id = expired.id
              AND o.status = 'running' AND o.locked_until < @now
            RETURNING o.id, o.kind, o.status
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var rescued = await connection.QueryAsync<RescuedOperation>(new CommandDefinition(Sql,
            new { now, batchSize, exhaustedErrorJson, cancelledErrorJson, leaseLostErrorJson }, cancellationToken: cancellationToken)).ConfigureAwait(false);
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
                locked_by = NULL, locked_until = NULL, updated_at = @now, version = version + 1,
                attempt_history = operations_attempt_ended(attempt_history, attempts, started_at, @now, 'timed_out',
                                                           CAST(@interruptedErrorJson AS jsonb), locked_by, trace_parent)
            WHERE status = 'running' AND locked_by = @nodeId
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.ExecuteAsync(new CommandDefinition(Sql, new { nodeId, now, interruptedErrorJson = OperationErrors.Interrupted },
            cancellationToken: cancellationToken)).ConfigureAwait(false);
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

    /// <summary>
    /// Returns to <c>pending</c>, their attempt uncounted, the operations a claim by this node took if its commit outcome
    /// was unknown: the rows still held under that claim's lease expiry and never started (never renewed, so the expiry is
    /// still the claim's own). Returns how many were released.
    /// </summary>
    public async Task<int> ReleaseUnstartedClaimAsync(string nodeId, DateTime leaseUntil, DateTime now, CancellationToken cancellationToken)
    {
        const string Sql = """
            UPDATE operations
            SET status = 'pending', attempts = attempts - 1, next_attempt_at = @now, locked_by = NULL, locked_until = NULL,
                started_at = NULL, updated_at = @now, version = version + 1
            WHERE locked_by = @nodeId AND locked_until = @leaseUntil
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.ExecuteAsync(new CommandDefinition(Sql, new { nodeId, leaseUntil, now },
            cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    private async Task<bool> ExecuteFencedAsync(string sql, object parameters, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        int rows = await WriteFailure.SentOnAsync(connection, c => c.ExecuteAsync(
            new CommandDefinition(sql, parameters, cancellationToken: cancellationToken))).ConfigureAwait(false);
        return rows == 1;
    }
}
