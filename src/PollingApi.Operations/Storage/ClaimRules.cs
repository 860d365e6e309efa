namespace PollingApi.Operations.Storage;

/// <summary>
/// What a claim must keep to, as parameters of the claim statement: kinds not to claim, cluster-wide caps per kind, and
/// caps per tenant (<see cref="TenantCap"/> for every tenant, <see cref="CapTenants"/> for named ones).
/// </summary>
internal sealed record ClaimRules(
    string[] PausedKinds,
    string[] CappedKinds,
    int[] KindCaps,
    int? TenantCap,
    string[] CapTenants,
    int[] TenantCaps)
{
    public static readonly ClaimRules None = new([], [], [], null, [], []);

    /// <summary>Whether a claim must count what is running, under the lock all capped claims take turns on.</summary>
    public bool HasCaps => CappedKinds.Length > 0 || TenantCap is not null || CapTenants.Length > 0;

    /// <summary>How many operations of <paramref name="tenant"/> may run at once across all nodes; null for no cap.</summary>
    public int? TenantCapOf(string tenant)
    {
        int named = Array.IndexOf(CapTenants, tenant);
        return named >= 0 ? TenantCaps[named] : TenantCap;
    }

    /// <summary>Whether an operation of <paramref name="kind"/> may be claimed by the node that stores it, with no claim statement.</summary>
    public bool AllowsClaimAtInsert(string kind) =>
        TenantCap is null && CapTenants.Length == 0 && Array.IndexOf(PausedKinds, kind) < 0 && Array.IndexOf(CappedKinds, kind) < 0;
}
