using PollingApi.Operations.Storage;
using PollingApi.Operations.Worker;

namespace PollingApi.Operations.Lifecycle;

/// <summary>
/// The registered kinds and their run-time settings: read from the database (so every node answers alike), and saved
/// there and announced to every node, taking effect on this one at once.
/// </summary>
internal sealed class OperationKinds(KindSettingsStore store, KindSettingsCache cache, HandlerSlots slots, CommandRegistry commands,
    TimeProvider timeProvider)
{
    public bool IsRegistered(string kind) => commands.Find(kind) is not null;

    /// <summary>Every registered kind's settings, in kind order; a kind no operator has set has the defaults.</summary>
    public async Task<IReadOnlyList<KindSettings>> ListAsync(CancellationToken cancellationToken)
    {
        var stored = (await store.ReadAllAsync(cancellationToken).ConfigureAwait(false)).ToDictionary(r => r.Kind, StringComparer.Ordinal);
        return [.. commands.All.Select(c => c.Kind).Order(StringComparer.Ordinal)
            .Select(kind => stored.TryGetValue(kind, out var row) ? KindSettings.From(row) : KindSettings.Defaults(kind))];
    }

    public async Task<KindSettings> SaveAsync(string kind, bool paused, int? maxConcurrency, int? attemptTimeoutSeconds, int priority,
        CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow().UtcDateTime;
        var saved = await store.SaveAsync(new KindSettingsRow(kind, paused, maxConcurrency, attemptTimeoutSeconds, (short)priority,
            now.AddTicks(-(now.Ticks % 10))), cancellationToken).ConfigureAwait(false);
        cache.Apply(saved);
        // A resumed kind or a raised cap may have work waiting.
        slots.NotePending();
        return KindSettings.From(saved);
    }
}
