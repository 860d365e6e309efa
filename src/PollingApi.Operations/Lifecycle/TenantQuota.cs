using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Lifecycle;

/// <summary>
/// The cap on a tenant's unfinished operations (<see cref="OperationsOptions.MaxUnfinishedPerTenant"/>). A node counts a
/// tenant's pending and running operations at most once a second, and adds what it accepted for the tenant since: the
/// submit path reads the database once a second per tenant, not once per submit. The cap is soft across nodes (each
/// adds only its own acceptances between counts).
/// </summary>
internal sealed class TenantQuota(OperationStore store, IOptions<OperationsOptions> options, TimeProvider timeProvider)
{
    private static readonly TimeSpan CountInterval = TimeSpan.FromSeconds(1);
    private readonly ConcurrentDictionary<string, TenantCount> _counts = new(StringComparer.Ordinal);

    public int Limit => options.Value.MaxUnfinishedPerTenant;

    /// <summary>Whether <paramref name="tenant"/> may store one more operation; counts it as accepted when it may.</summary>
    public async ValueTask<bool> TryAdmitAsync(string tenant, CancellationToken cancellationToken)
    {
        int limit = Limit;
        if (limit == 0)
        {
            return true;
        }

        var count = _counts.GetOrAdd(tenant, _ => new TenantCount());
        long now = timeProvider.GetTimestamp();
        if (count.IsStale(now, timeProvider) && count.TryBeginRefresh())
        {
            try
            {
                int unfinished = await store.CountUnfinishedAsync(tenant, limit + 1, cancellationToken).ConfigureAwait(false);
                count.Refreshed(unfinished, now);
            }
            finally
            {
                count.EndRefresh();
            }
        }

        return count.TryAccept(limit);
    }

    private sealed class TenantCount
    {
        private readonly Lock _lock = new();
        private int _counted;
        private int _acceptedSince;
        private long _countedAt;
        private bool _everCounted;
        private int _refreshing;

        public bool IsStale(long now, TimeProvider time)
        {
            lock (_lock)
            {
                return !_everCounted || time.GetElapsedTime(_countedAt, now) >= CountInterval;
            }
        }

        public bool TryBeginRefresh() => Interlocked.CompareExchange(ref _refreshing, 1, 0) == 0;

        public void EndRefresh() => Volatile.Write(ref _refreshing, 0);

        public void Refreshed(int unfinished, long at)
        {
            lock (_lock)
            {
                _counted = unfinished;
                _acceptedSince = 0;
                _countedAt = at;
                _everCounted = true;
            }
        }

        public bool TryAccept(int limit)
        {
            lock (_lock)
            {
                if (_counted + _acceptedSince >= limit)
                {
                    return false;
                }

                _acceptedSince++;
                return true;
            }
        }
    }
}
