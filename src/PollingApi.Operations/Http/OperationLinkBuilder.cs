using Microsoft.AspNetCore.Http;

namespace PollingApi.Operations.Http;

/// <summary>Absolute URLs of operations as the caller sees the service (after forwarded headers are applied).</summary>
internal static class OperationLinkBuilder
{
    public static string Self(HttpRequest request, Guid id) =>
        $"{request.Scheme}://{request.Host.ToUriComponent()}{request.PathBase.ToUriComponent()}/v1/operations/{id}";
}
