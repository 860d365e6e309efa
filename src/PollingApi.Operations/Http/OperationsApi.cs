using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Http;

/// <summary>Maps <c>/v1/operations</c> (the status monitors) and the route of every registered command.</summary>
public static class OperationsApi
{
    public static IEndpointRouteBuilder MapOperations(this IEndpointRouteBuilder endpoints)
    {
        var operations = endpoints.MapGroup("/v1/operations").WithTags("Operations");

        operations.MapGet("/{id}", GetOperationAsync)
            .WithName("GetOperation")
            .WithSummary("Get an operation's status")
            .WithDescription("""
                Polls the status monitor of a submitted command. While the operation is `pending` or `running`
                the answer is `202 Accepted` with a `Retry-After` header: wait that many seconds before polling
                again. Once it is `succeeded`, `failed` or `cancelled` (`done` is true) the answer is `200 OK`
                with the `result` or the `error`.
                """)
            .Produces<OperationResource>(StatusCodes.Status200OK)
            .Produces<OperationResource>(StatusCodes.Status202Accepted)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status200OK,
                "The operation is done (succeeded, failed or cancelled); see result or error."))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status202Accepted,
                "The operation is pending or running: poll again after Retry-After seconds.", ResponseHeaders.RetryAfter))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status400BadRequest, "The id is not a UUID (invalid-operation-id)."))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status404NotFound, "No operation has this id (operation-not-found)."))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status503ServiceUnavailable,
                "The database cannot be reached: retry after Retry-After seconds.", ResponseHeaders.RetryAfter));

        var commands = endpoints.ServiceProvider.GetRequiredService<CommandRegistry>();
        foreach (var command in commands.All)
        {
            command.MapEndpoint(endpoints, command);
        }

        return endpoints;
    }

    internal static async Task<Results<Ok<OperationResource>, Accepted<OperationResource>, ProblemHttpResult>> GetOperationAsync(
        string id, HttpContext http, OperationStore store, RetryAfterPolicy retryAfter, CancellationToken cancellationToken)
    {
        if (!Guid.TryParseExact(id, "D", out var operationId))
        {
            return Problems.InvalidOperationId();
        }

        var row = await store.FindAsync(operationId, OperationOwner.Default, cancellationToken).ConfigureAwait(false);
        if (row is null)
        {
            return Problems.OperationNotFound(operationId);
        }

        return Respond(http, row, retryAfter);
    }

    /// <summary>200 with the operation when it is terminal, otherwise 202 with <c>Retry-After</c>.</summary>
    internal static Results<Ok<OperationResource>, Accepted<OperationResource>, ProblemHttpResult> Respond(
        HttpContext http, OperationRow row, RetryAfterPolicy retryAfter)
    {
        string self = OperationLinkBuilder.Self(http.Request, row.Id);
        var resource = OperationResource.From(row, self);
        if (resource.Done)
        {
            return TypedResults.Ok(resource);
        }

        http.Response.Headers.RetryAfter = retryAfter.SecondsFor(row).ToString(System.Globalization.CultureInfo.InvariantCulture);
        return TypedResults.Accepted((string?)null, resource);
    }
}

/// <summary>Who owns an operation. Everything belongs to one default owner until authentication lands.</summary>
public static class OperationOwner
{
    public const string Default = "default";
}
