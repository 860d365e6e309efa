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
    Guid AccountB);
