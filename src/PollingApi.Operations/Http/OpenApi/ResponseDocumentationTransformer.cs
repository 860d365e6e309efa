using System.Globalization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using PollingApi.Operations.Model;

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
            // The handlers read these as text to answer bad values with a problem of their own; the document says what they are.
            (parameter.Description, parameter.Schema) = (parameter.In, parameter.Name) switch
            {
                (ParameterLocation.Path, "id") => ("The id, as in the Location URL.", new OpenApiSchema { Type = JsonSchemaType.String, Format = "uuid" }),
                (ParameterLocation.Query, "wait") => ("Hold the answer up to this many seconds (capped by the server) until the operation is done.",
                    new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int32", Minimum = "0" }),
                (ParameterLocation.Query, "limit") => ("Operations per page, 1 to 100 (default 20).",
                    new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int32", Minimum = "1", Maximum = "100" }),
                (ParameterLocation.Query, "createdAfter") => ("Only operations created after this time (RFC 3339).",
                    new OpenApiSchema { Type = JsonSchemaType.String, Format = "date-time" }),
                (ParameterLocation.Query, "createdBefore") => ("Only operations created before this time (RFC 3339).",
                    new OpenApiSchema { Type = JsonSchemaType.String, Format = "date-time" }),
                (ParameterLocation.Query, "status") => ("Only operations in this status.",
                    new OpenApiSchema { Type = JsonSchemaType.String, Enum = [.. OperationStatus.All.Select(v => (System.Text.Json.Nodes.JsonNode)v!)] }),
                (ParameterLocation.Query, "kind") => ("Only operations of this command kind, e.g. diagnostics.sleep.",
                    new OpenApiSchema { Type = JsonSchemaType.String, MaxLength = 200 }),
                (ParameterLocation.Query, "tenant") => ("Only this tenant's operations: any tenant for an admin; otherwise only the caller's own (another tenant gives an empty page).",
                    new OpenApiSchema { Type = JsonSchemaType.String, MinLength = 1, MaxLength = 64, Pattern = "^[A-Za-z0-9._:-]{1,64}$" }),
                (ParameterLocation.Query, "errorType") => ("Only failures with this problem type, e.g. urn:pollingapi:problem:handler-failed.",
                    new OpenApiSchema { Type = JsonSchemaType.String, MaxLength = 200 }),
                (ParameterLocation.Query, "cursor") => ("The nextCursor of the previous page.", new OpenApiSchema { Type = JsonSchemaType.String }),
                _ => (parameter.Description, parameter.Schema),
            };
        }

        foreach (var header in context.Description.ActionDescriptor.EndpointMetadata.OfType<RequestHeaderDocumentation>())
        {
            operation.Parameters ??= [];
            operation.Parameters.Add(new OpenApiParameter
            {
                Name = header.Name,
                In = ParameterLocation.Header,
                Required = false,
                Description = header.Description,
                Schema = new OpenApiSchema { Type = JsonSchemaType.String, MaxLength = header.MaxLength },
            });
        }

        return Task.CompletedTask;
    }
}
