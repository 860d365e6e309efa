using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace PollingApi.Operations.Http.OpenApi;

/// <summary>Types each command's result in the OpenAPI document.</summary>
internal sealed class OperationKindSchemaTransformer : IOpenApiDocumentTransformer
{
    public Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken) =>
        Task.CompletedTask;
}
