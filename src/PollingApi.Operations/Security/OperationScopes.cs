namespace PollingApi.Operations.Security;

/// <summary>
/// What a credential allows. Each is also the name of the authorization policy that requires it, so a host's own
/// endpoints can say <c>.RequireAuthorization(OperationScopes.Read)</c>.
/// </summary>
public static class OperationScopes
{
    /// <summary>Submit commands (every command's POST).</summary>
    public const string Submit = "operations:submit";

    /// <summary>Read operations (one, or a list) and what commands created, such as accounts.</summary>
    public const string Read = "operations:read";

    /// <summary>Cancel, retry (replay) and delete operations.</summary>
    public const string Manage = "operations:manage";

    /// <summary>The admin endpoints, and reading and managing every tenant's operations (for operators).</summary>
    public const string Admin = "admin";

    /// <summary>Every scope, in the order above.</summary>
    public static IReadOnlyList<string> All { get; } = [Submit, Read, Manage, Admin];
}


/// <summary>Reads the caller of a request, for a host's own endpoints behind one of the <see cref="OperationScopes"/> policies.</summary>
public static class OperationCallerExtensions
{
    /// <summary>The tenant the request was authorized as, and whether it sees every tenant's data (admin).</summary>
    public static Model.OperationCaller GetOperationCaller(this System.Security.Claims.ClaimsPrincipal user)
    {
        ArgumentNullException.ThrowIfNull(user);
        return CallerClaims.Caller(user);
    }
}
