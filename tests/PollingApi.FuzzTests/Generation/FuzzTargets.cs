namespace PollingApi.FuzzTests.Generation;

/// <summary>
/// What the generator aims at besides made-up values: the two tenants' API keys and real resources of tenant A
/// made before the fuzz starts, all of them done.
/// </summary>
internal sealed record FuzzTargets(
    string TenantAKey,
    string TenantBKey,
    IReadOnlyList<Guid> Operations,
    Guid AccountA,
    Guid AccountB)
{
    /// <summary>Tenant A's operation and account ids, as the API writes them.</summary>
    public IReadOnlySet<string> TenantAIds { get; } =
        Operations.Append(AccountA).Append(AccountB).Select(id => id.ToString("D", System.Globalization.CultureInfo.InvariantCulture)).ToHashSet(StringComparer.Ordinal);
}
