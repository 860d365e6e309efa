using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.Extensions.DependencyInjection;
using PollingApi.Operations.Lifecycle;
using PollingApi.Operations.Security;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Http;

/// <summary>
/// An answer with an operation: <c>200</c> when it is done, <c>202</c> with <c>Retry-After</c> when not, <c>304</c> when
/// the request's <c>If-None-Match</c> names its current representation (see <see cref="OperationResponses.Respond"/>).
/// As a handler's return type it declares the <c>200</c> and <c>202</c> bodies in the OpenAPI document.
/// </summary>
internal sealed class OperationResult(OperationRow row, bool withLocation = false) : IResult, IEndpointMetadataProvider
{
    public OperationRow Row { get; } = row;

    public Task ExecuteAsync(HttpContext httpContext)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        var services = httpContext.RequestServices;
        return OperationResponses.Respond(httpContext, Row, services.GetRequiredService<RetryAfterPolicy>(),
            services.GetRequiredService<OperationQueueEstimator>(), withLocation).ExecuteAsync(httpContext);
    }

    public static void PopulateMetadata(MethodInfo method, EndpointBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Metadata.Add(new ProducesResponseTypeMetadata(StatusCodes.Status200OK, typeof(OperationResource), ["application/json"]));
        builder.Metadata.Add(new ProducesResponseTypeMetadata(StatusCodes.Status202Accepted, typeof(OperationResource), ["application/json"]));
    }
}

/// <summary>
/// The <c>{id}</c> of an operation's route, parsed once when the route is bound. An id that is not a UUID still binds
/// (<see cref="IsValid"/> false), so the route group answers it with the API's own <c>invalid-operation-id</c> problem.
/// </summary>
internal readonly record struct OperationRouteId(Guid Value, bool IsValid)
{
    public static bool TryParse(string? value, out OperationRouteId id)
    {
        bool valid = Guid.TryParseExact(value, "D", out var parsed);
        id = new OperationRouteId(parsed, valid);
        return true;
    }

    /// <summary>An endpoint filter for a route group whose routes take an <see cref="OperationRouteId"/>.</summary>
    public static async ValueTask<object?> RejectInvalidAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        return context.Arguments.OfType<OperationRouteId>().Any(id => !id.IsValid)
            ? Problems.InvalidOperationId()
            : await next(context).ConfigureAwait(false);
    }
}

/// <summary>Declares an endpoint's answers for the OpenAPI document, each in one place.</summary>
internal static class ResponseDeclarations
{
    /// <summary>An answer whose body (if any) the handler's typed result declares: its description and headers.</summary>
    public static RouteHandlerBuilder Responds(this RouteHandlerBuilder builder, int status, string description, params ResponseHeader[] headers) =>
        builder.WithMetadata(new ResponseDocumentation(status, description, headers));

    /// <summary>The endpoint needs <paramref name="scope"/>: authorized by that policy, with the answers to callers without it.</summary>
    public static RouteHandlerBuilder RequiresScope(this RouteHandlerBuilder builder, string scope) =>
        builder.WithMetadata(ScopeRequirement.For(scope)).RespondsToCallers(scope);

    /// <summary>The answers every authorized endpoint may give before it runs: 401, 403 (without <paramref name="scope"/>) and 429.</summary>
    public static RouteHandlerBuilder RespondsToCallers(this RouteHandlerBuilder builder, string scope) => builder
        .RespondsWithProblem(StatusCodes.Status401Unauthorized,
            "No valid credentials: send an API key in X-Api-Key, or a bearer token where tokens are accepted (unauthorized).",
            ResponseHeaders.WwwAuthenticate)
        .RespondsWithProblem(StatusCodes.Status403Forbidden, $"The credentials do not have the scope {scope} (forbidden).")
        .RespondsWithProblem(StatusCodes.Status429TooManyRequests,
            "The tenant's rate limit is reached (rate-limited): retry after Retry-After seconds.", ResponseHeaders.RetryAfter);

    /// <summary>An <c>application/problem+json</c> answer: its status, description and headers.</summary>
    public static RouteHandlerBuilder RespondsWithProblem(this RouteHandlerBuilder builder, int status, string description,
        params ResponseHeader[] headers) =>
        builder.ProducesProblem(status).WithMetadata(new ResponseDocumentation(status, description, headers));
}
