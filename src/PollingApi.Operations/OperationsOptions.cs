using Microsoft.Extensions.Options;

namespace PollingApi.Operations;

/// <summary>Settings of the operations engine, bound from the <c>Operations</c> configuration section.</summary>
public sealed class OperationsOptions
{
    public const string SectionName = "Operations";

    /// <summary>Whether this node serves the API, runs handlers, or both.</summary>
    public OperationsRole Role { get; set; } = OperationsRole.All;

    /// <summary>This node's name in <c>locked_by</c>; defaults to host name, process id and a random suffix.</summary>
    public string? NodeId { get; set; }

    /// <summary>How many handlers one node runs at once.</summary>
    public int MaxConcurrency { get; set; } = 32;

    /// <summary>How often an idle worker looks for due work it was not woken for (retries falling due, other nodes' submits).</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a claim is valid without renewal before another node may take the operation over.</summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often a worker renews the leases of the handlers it is running.</summary>
    public TimeSpan LeaseRenewInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How often the lease-rescue job returns operations of dead workers to <c>pending</c>.</summary>
    public TimeSpan LeaseRescueInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a stopping worker lets running handlers finish before it cancels them and releases their leases.</summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Attempts per operation when a command does not set its own.</summary>
    public int DefaultMaxAttempts { get; set; } = 5;

    /// <summary>The backoff cap of the first retry; each further retry doubles it, up to <see cref="RetryMaxDelay"/>.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The largest backoff between two attempts.</summary>
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The smallest <c>Retry-After</c> the API advertises.</summary>
    public TimeSpan RetryAfterMin { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The largest <c>Retry-After</c> the API advertises.</summary>
    public TimeSpan RetryAfterMax { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The largest request body a command accepts, in bytes.</summary>
    public long MaxRequestBodyBytes { get; set; } = 64 * 1024;

    /// <summary>
    /// How many unfinished (pending or running) operations a tenant may have; a submit beyond that is answered
    /// <c>429 quota-exceeded</c>. 0 for no cap. Each node checks against a count at most a second old plus what it
    /// accepted since, so several nodes together can let a tenant go over by what they accept within that second.
    /// </summary>
    public int MaxUnfinishedPerTenant { get; set; } = 10_000;

    /// <summary>The longest a request may wait for an operation to finish (<c>Prefer: wait</c>, <c>?wait=</c>).</summary>
    public TimeSpan MaxWait { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How often an open event stream sends a comment when nothing happens, so that proxies and load balancers do not
    /// close it as idle.
    /// </summary>
    public TimeSpan EventHeartbeatInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// How many operations of one tenant may run at once across all nodes; null (the default) sets no cap. With a cap
    /// (here or in <see cref="TenantMaxConcurrencyOverrides"/>), claims count what is running and take turns on one lock,
    /// and no operation is claimed at insert.
    /// </summary>
    public int? TenantMaxConcurrency { get; set; }

    /// <summary>Caps for named tenants, replacing <see cref="TenantMaxConcurrency"/> for them.</summary>
    public Dictionary<string, int> TenantMaxConcurrencyOverrides { get; } = new(StringComparer.Ordinal);

    /// <summary>How far ahead <c>Operation-Scheduled-At</c> may be.</summary>
    public TimeSpan MaxScheduleAhead { get; set; } = TimeSpan.FromDays(30);

    /// <summary>
    /// How long a node keeps trying to settle a write whose connection failed after it was sent (was it committed or
    /// not?) before it tells the caller the outcome is unknown (<c>503 commit-outcome-unknown</c>). A keyed submit,
    /// cancel, retry or delete whose client hangs up stops settling sooner; a group-commit batch settles for all its callers.
    /// </summary>
    public TimeSpan CommitResolutionTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a starting node waits for its database (reachable, and its migrations applied) before it gives up and
    /// stops with a non-zero exit code; null (the default) waits indefinitely. Meanwhile it answers <c>/health/live</c> but
    /// not <c>/health/ready</c>, and requests that need the database get <c>503 database-unavailable</c>.
    /// </summary>
    public TimeSpan? StartupDatabaseTimeout { get; set; }

    /// <summary>How long a finished operation (and its idempotency key) is kept before it is purged.</summary>
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>
    /// How many finished operations a node keeps in memory to answer polls without a query; 0 turns the cache off.
    /// A copy is dropped when the operation is retried or deleted on any node (see <c>FinishedOperationCache</c>).
    /// </summary>
    public int FinishedOperationCacheSize { get; set; } = 10_000;

    /// <summary>How often the retention job looks for finished operations to purge.</summary>
    public TimeSpan PurgeInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Rows the retention job deletes per statement, keeping each transaction short.</summary>
    public int PurgeBatchSize { get; set; } = 500;

    /// <summary>How long an operation may stay due without being claimed before the consistency check reports it.</summary>
    public TimeSpan PendingAlertAge { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How often the consistency job runs (once per cluster) and logs what it finds.</summary>
    public TimeSpan ConsistencyCheckInterval { get; set; } = TimeSpan.FromMinutes(5);
}

internal sealed class OperationsOptionsValidator : IValidateOptions<OperationsOptions>
{
    public ValidateOptionsResult Validate(string? name, OperationsOptions options)
    {
        var failures = new List<string>();

        void Require(bool condition, string message)
        {
            if (!condition)
            {
                failures.Add(message);
            }
        }

        Require(Enum.IsDefined(options.Role), $"Operations:Role must be All, Api or Worker, not '{options.Role}'.");
        Require(options.NodeId is null || (options.NodeId.Length is > 0 and <= 200),
            $"Operations:NodeId must be 1 to 200 characters, not '{options.NodeId}'.");
        Require(options.MaxConcurrency is >= 1 and <= 1024, $"Operations:MaxConcurrency must be 1 to 1024, not {options.MaxConcurrency}.");
        Require(options.PollInterval >= TimeSpan.FromMilliseconds(50) && options.PollInterval <= TimeSpan.FromMinutes(1),
            $"Operations:PollInterval must be 00:00:00.050 to 00:01:00, not {options.PollInterval}.");
        Require(options.LeaseDuration >= TimeSpan.FromSeconds(1), $"Operations:LeaseDuration must be at least 00:00:01, not {options.LeaseDuration}.");
        Require(options.LeaseRenewInterval > TimeSpan.Zero && options.LeaseRenewInterval * 2 <= options.LeaseDuration,
            $"Operations:LeaseRenewInterval must be positive and at most half of LeaseDuration ({options.LeaseDuration}), not {options.LeaseRenewInterval}.");
        Require(options.LeaseRescueInterval >= TimeSpan.FromMilliseconds(100),
            $"Operations:LeaseRescueInterval must be at least 00:00:00.100, not {options.LeaseRescueInterval}.");
        Require(options.ShutdownTimeout >= TimeSpan.Zero && options.ShutdownTimeout <= TimeSpan.FromMinutes(10),
            $"Operations:ShutdownTimeout must be 00:00:00 to 00:10:00, not {options.ShutdownTimeout}.");
        Require(options.DefaultMaxAttempts is >= 1 and <= 100, $"Operations:DefaultMaxAttempts must be 1 to 100, not {options.DefaultMaxAttempts}.");
        Require(options.RetryBaseDelay > TimeSpan.Zero, $"Operations:RetryBaseDelay must be positive, not {options.RetryBaseDelay}.");
        Require(options.RetryMaxDelay >= options.RetryBaseDelay,
            $"Operations:RetryMaxDelay must be at least RetryBaseDelay ({options.RetryBaseDelay}), not {options.RetryMaxDelay}.");
        Require(options.RetryAfterMin >= TimeSpan.FromSeconds(1), $"Operations:RetryAfterMin must be at least 00:00:01, not {options.RetryAfterMin}.");
        Require(options.RetryAfterMax >= options.RetryAfterMin,
            $"Operations:RetryAfterMax must be at least RetryAfterMin ({options.RetryAfterMin}), not {options.RetryAfterMax}.");
        Require(options.MaxRequestBodyBytes is >= 1024 and <= 16 * 1024 * 1024,
            $"Operations:MaxRequestBodyBytes must be 1024 to 16777216, not {options.MaxRequestBodyBytes}.");

        Require(options.MaxUnfinishedPerTenant >= 0,
            $"Operations:MaxUnfinishedPerTenant must be 0 (no cap) or more, not {options.MaxUnfinishedPerTenant}.");
        Require(options.TenantMaxConcurrency is null or >= 1,
            $"Operations:TenantMaxConcurrency must be 1 or more, or not set (no cap), not {options.TenantMaxConcurrency}.");
        foreach (var (tenant, cap) in options.TenantMaxConcurrencyOverrides)
        {
            Require(cap >= 1, $"Operations:TenantMaxConcurrencyOverrides:{tenant} must be 1 or more, not {cap}.");
        }

        Require(options.MaxWait >= TimeSpan.Zero && options.MaxWait <= TimeSpan.FromMinutes(10),
            $"Operations:MaxWait must be 00:00:00 to 00:10:00, not {options.MaxWait}.");
        Require(options.MaxScheduleAhead >= TimeSpan.FromMinutes(1) && options.MaxScheduleAhead <= TimeSpan.FromDays(365),
            $"Operations:MaxScheduleAhead must be 00:01:00 to 365.00:00:00, not {options.MaxScheduleAhead}.");
        Require(options.EventHeartbeatInterval >= TimeSpan.FromMilliseconds(100) && options.EventHeartbeatInterval <= TimeSpan.FromMinutes(5),
            $"Operations:EventHeartbeatInterval must be 00:00:00.1 to 00:05:00, not {options.EventHeartbeatInterval}.");
        Require(options.CommitResolutionTimeout >= TimeSpan.FromMilliseconds(100) && options.CommitResolutionTimeout <= TimeSpan.FromMinutes(1),
            $"Operations:CommitResolutionTimeout must be 00:00:00.100 to 00:01:00, not {options.CommitResolutionTimeout}.");
        Require(options.StartupDatabaseTimeout is null || options.StartupDatabaseTimeout > TimeSpan.Zero,
            $"Operations:StartupDatabaseTimeout must be positive, or not set (wait for the database indefinitely), not {options.StartupDatabaseTimeout}.");
        Require(options.Retention >= TimeSpan.FromHours(24),
            $"Operations:Retention must be at least 1.00:00:00 (24 hours), not {options.Retention}.");
        Require(options.PurgeInterval >= TimeSpan.FromSeconds(1), $"Operations:PurgeInterval must be at least 00:00:01, not {options.PurgeInterval}.");
        Require(options.FinishedOperationCacheSize is >= 0 and <= 1_000_000,
            $"Operations:FinishedOperationCacheSize must be 0 (off) to 1000000, not {options.FinishedOperationCacheSize}.");
        Require(options.PurgeBatchSize is >= 1 and <= 10_000, $"Operations:PurgeBatchSize must be 1 to 10000, not {options.PurgeBatchSize}.");

        Require(options.PendingAlertAge >= TimeSpan.FromSeconds(1), $"Operations:PendingAlertAge must be at least 00:00:01, not {options.PendingAlertAge}.");
        Require(options.ConsistencyCheckInterval >= TimeSpan.FromSeconds(1),
            $"Operations:ConsistencyCheckInterval must be at least 00:00:01, not {options.ConsistencyCheckInterval}.");

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
