using System.Collections.Frozen;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Worker;

/// <summary>A kind's settings as they apply now: stored by an operator, or the defaults.</summary>
internal sealed record KindSettings(string Kind, bool Paused, int? MaxConcurrency, int? AttemptTimeoutSeconds, int Priority, DateTime? UpdatedAt)
{
    public const int DefaultPriority = 5;

    public static KindSettings Defaults(string kind) => new(kind, false, null, null, DefaultPriority, null);

    public static KindSettings From(KindSettingsRow row) =>
        new(row.Kind, row.Paused, row.MaxConcurrency, row.AttemptTimeoutSeconds, row.Priority, row.UpdatedAt);
}

/// <summary>
/// This node's copy of <c>operation_kinds</c>, and the <see cref="ClaimRules"/> it makes with the tenant caps of
/// <see cref="OperationsOptions"/>. Read again when any node announces a change, and every few seconds in case an
/// announcement was missed; until the first read succeeds, claims wait for it and nothing is claimed at insert.
/// </summary>
internal sealed class KindSettingsCache(KindSettingsStore store, IOptions<OperationsOptions> options)
{
    private volatile Snapshot? _snapshot;

    public bool IsLoaded => _snapshot is not null;

    public KindSettings For(string kind) => _snapshot?.ByKind.GetValueOrDefault(kind) ?? KindSettings.Defaults(kind);

    /// <summary>The rules the next claim keeps to. Before the first read, those of the configuration alone.</summary>
    public ClaimRules ClaimRules => _snapshot?.Rules ?? Build([]).Rules;

    /// <summary>Whether the node storing an operation of <paramref name="kind"/> may claim it at once.</summary>
    public bool AllowsClaimAtInsert(string kind) => _snapshot is { } snapshot && snapshot.Rules.AllowsClaimAtInsert(kind);

    public async Task EnsureLoadedAsync(CancellationToken cancellationToken)
    {
        if (_snapshot is null)
        {
            await RefreshAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Reads the settings again; true when they changed.</summary>
    public async Task<bool> RefreshAsync(CancellationToken cancellationToken)
    {
        var rows = await store.ReadAllAsync(cancellationToken).ConfigureAwait(false);
        var next = Build(rows.Select(KindSettings.From));
        var previous = _snapshot;
        _snapshot = next;
        return previous is null || !previous.SameAs(next);
    }

    /// <summary>Takes a change saved on this node into effect here at once, before its announcement comes back.</summary>
    public void Apply(KindSettingsRow row)
    {
        var current = _snapshot?.ByKind.Values ?? (IEnumerable<KindSettings>)[];
        _snapshot = Build(current.Where(k => k.Kind != row.Kind).Append(KindSettings.From(row)));
    }

    private Snapshot Build(IEnumerable<KindSettings> kinds)
    {
        var byKind = kinds.ToFrozenDictionary(k => k.Kind, StringComparer.Ordinal);
        var capped = byKind.Values.Where(k => k.MaxConcurrency is not null).OrderBy(k => k.Kind, StringComparer.Ordinal).ToArray();
        var tenantCaps = options.Value.TenantMaxConcurrencyOverrides.OrderBy(t => t.Key, StringComparer.Ordinal).ToArray();
        var rules = new ClaimRules(
            [.. byKind.Values.Where(k => k.Paused).Select(k => k.Kind).Order(StringComparer.Ordinal)],
            [.. capped.Select(k => k.Kind)],
            [.. capped.Select(k => k.MaxConcurrency!.Value)],
            options.Value.TenantMaxConcurrency,
            [.. tenantCaps.Select(t => t.Key)],
            [.. tenantCaps.Select(t => t.Value)]);
        return new Snapshot(byKind, rules);
    }

    private sealed record Snapshot(FrozenDictionary<string, KindSettings> ByKind, ClaimRules Rules)
    {
        public bool SameAs(Snapshot other) =>
            ByKind.Count == other.ByKind.Count && ByKind.All(k => other.ByKind.TryGetValue(k.Key, out var o) && o == k.Value);
    }
}

/// <summary>
/// Keeps <see cref="KindSettingsCache"/> current: reads once the node has migrated its database at start, when asked (a
/// change announced by any node), and every <see cref="Interval"/>; after a change it wakes the worker, so a resumed kind
/// or a raised cap is claimed at once.
/// </summary>
internal sealed partial class KindSettingsRefresher(KindSettingsCache cache, HandlerSlots slots, DatabaseStartupGate startup,
    ILogger<KindSettingsRefresher> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    private readonly SemaphoreSlim _requested = new(0, 1);

    /// <summary>Asks for a read as soon as possible.</summary>
    public void RequestRefresh()
    {
        try
        {
            _requested.Release();
        }
        catch (SemaphoreFullException)
        {
            // A read is already asked for.
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            // Its table exists once the migrations ran.
            await startup.WaitUntilOpenAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (await cache.RefreshAsync(stoppingToken).ConfigureAwait(false))
                {
                    slots.NotePending();
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
            {
                LogRefreshFailed(ex);
            }

            try
            {
                await _requested.WaitAsync(Interval, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public override void Dispose()
    {
        _requested.Dispose();
        base.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reading the kinds' settings failed; the last ones read stay in effect")]
    private partial void LogRefreshFailed(Exception exception);
}
