using System.Globalization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using PollingApi.Operations.Http;

namespace PollingApi.Operations.Http.OpenApi;

/// <summary>
/// Completes the OpenAPI description of the operations API: each response's description and headers from
/// <see cref="ResponseDocumentation"/>, and operation ids typed as UUIDs.
/// </summary>
internal sealed class ResponseDocumentationTransformer : IOpenApiOperationTransformer
{
    public Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        foreach (var documentation in context.Description.ActionDescriptor.EndpointMetadata.OfType<ResponseDocumentation>())
        {
            string code = documentation.StatusCode.ToString(CultureInfo.InvariantCulture);
            if (operation.Responses?.TryGetValue(code, out var response) != true || response is not OpenApiResponse concrete)
            {
                continue;
            }

            concrete.Description = documentation.Description;
            if (documentation.Headers.Length == 0)
            {
                continue;
            }

            concrete.Headers ??= new Dictionary<string, IOpenApiHeader>();
            foreach (var header in documentation.Headers)
            {
                concrete.Headers[header.Name] = new OpenApiHeader
                {
                    Description = header.Description,
                    Required = header.Required,
                    Schema = new OpenApiSchema
                    {
                        Type = header.Type == "integer" ? JsonSchemaType.Integer : JsonSchemaType.String,
                        Format = header.Format,
                    },
                };
            }
        }

        foreach (var parameter in operation.Parameters?.OfType<OpenApiParameter>() ?? [])
        {
            if (parameter is { Name: "id", In: ParameterLocation.Path })
            {
                parameter.Description = "The operation's id, as in its Location URL.";
                parameter.Schema = new OpenApiSchema { Type = JsonSchemaType.String, Format = "uuid" };
            }
        }

        return Task.CompletedTask;
    }
}
