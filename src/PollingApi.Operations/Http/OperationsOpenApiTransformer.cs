using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace PollingApi.Operations.Http;

/// <summary>Adds the response headers named by <see cref="ResponseHeadersMetadata"/> to the OpenAPI document.</summary>
internal sealed class ResponseHeadersTransformer : IOpenApiOperationTransformer
{
    public Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        foreach (var metadata in context.Description.ActionDescriptor.EndpointMetadata.OfType<ResponseHeadersMetadata>())
        {
            string code = metadata.StatusCode.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (operation.Responses?.TryGetValue(code, out var response) != true || response is not OpenApiResponse concrete)
            {
                continue;
            }

            concrete.Headers ??= new Dictionary<string, IOpenApiHeader>();
            foreach (var header in metadata.Headers)
            {
                concrete.Headers[header.Name] = new OpenApiHeader
                {
                    Description = header.Description,
                    Required = true,
                    Schema = new OpenApiSchema
                    {
                        Type = header.Type == "integer" ? JsonSchemaType.Integer : JsonSchemaType.String,
                        Format = header.Format,
                    },
                };
            }
        }

        return Task.CompletedTask;
    }
}
