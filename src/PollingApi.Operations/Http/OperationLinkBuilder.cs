using Microsoft.AspNetCore.Http;

namespace PollingApi.Operations.Http;

/// <summary>Absolute URLs of operations as the caller sees the service (after forwarded headers are applied).</summary>
internal static class OperationLinkBuilder
{
    /// <summary>Where the operations API lives: the status monitors are <c>{Prefix}/{id}</c>.</summary>
    public const string Prefix = "/v1/operations";

    public static string Self(HttpRequest request, Guid id) =>
        $"{request.Scheme}://{request.Host.ToUriComponent()}{request.PathBase.ToUriComponent()}{Prefix}/{id}";
}
