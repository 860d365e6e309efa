using System.ComponentModel;
using System.Reflection;
using System.Text.Json;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;
using HttpJsonOptions = Microsoft.AspNetCore.Http.Json.JsonOptions;

namespace PollingApi.Operations.Http.OpenApi;

/// <summary>
/// The operation schema as an inheritance hierarchy discriminated by <c>kind</c>, the shape NSwag, Kiota and
/// openapi-generator all turn into one class per command:
/// <code>
/// OperationResource:      { every field but result, discriminator: { propertyName: kind, mapping: { "diagnostics.sleep": DiagnosticsSleepOperation, ... } } }
/// DiagnosticsSleepOperation: { allOf: [ OperationResource, { required: [result], properties: { result: SleepResult or null } } ] }
/// </code>
/// The base has no <c>result</c>: a typed one in a subclass would hide an untyped one in the base, which C#
/// generators emit as a member hiding another (a compiler warning) or resolve differently from one another. A
/// command's submit route is documented as answering its own <c>&lt;Kind&gt;Operation</c>, so an SDK's submit
/// method returns the typed operation; polling, listing and cancelling answer the base, which a generated client
/// deserialises into the subclass that <c>kind</c> names.
/// </summary>
internal static class OperationSchemas
{
    public const string BaseSchemaId = nameof(OperationResource);
    private const string KindProperty = "kind";
    private const string ResultProperty = "result";

    /// <summary>The schema id of a kind's operation: <c>diagnostics.sleep</c> is <c>DiagnosticsSleepOperation</c>.</summary>
    public static string SchemaIdFor(string kind) => CommandDescriptor.PascalName(kind) + "Operation";

    public static async Task AddTypedResultsAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context,
        CommandRegistry commands, CancellationToken cancellationToken)
    {
        if (document.Components?.Schemas?.Find(BaseSchemaId) is not OpenApiSchema operation || commands.All.Count == 0)
        {
            return;
        }

        DescribeProperties(operation, typeof(OperationResource));
        operation.Properties?.Remove(ResultProperty);
        operation.Required?.Remove(ResultProperty);
        var mapping = new Dictionary<string, OpenApiSchemaReference>(StringComparer.Ordinal);
        operation.Discriminator = new OpenApiDiscriminator { PropertyName = KindProperty, Mapping = mapping };

        foreach (var command in commands.All.OrderBy(c => c.Kind, StringComparer.Ordinal))
        {
            var result = await ResultSchemaAsync(document, context, command.ResultType, cancellationToken).ConfigureAwait(false);
            string id = SchemaIdFor(command.Kind);
            bool added = document.AddComponent(id, new OpenApiSchema
            {
                Description = $"An operation of kind `{command.Kind}`: once it has succeeded, its result is a {command.ResultType.Name}.",
                AllOf =
                [
                    new OpenApiSchemaReference(BaseSchemaId, document),
                    new OpenApiSchema
                    {
                        Type = JsonSchemaType.Object,
                        Required = new HashSet<string>(StringComparer.Ordinal) { ResultProperty },
                        Properties = new Dictionary<string, IOpenApiSchema>(StringComparer.Ordinal)
                        {
                            [ResultProperty] = Nullable(result,
                                $"The result of the {command.Kind} command once the operation has succeeded; null otherwise."),
                        },
                    },
                ],
            });
            if (!added)
            {
                throw new InvalidOperationException(
                    $"The OpenAPI schema id '{id}' of command kind '{command.Kind}' is already taken; give the kind a name that differs in more than punctuation.");
            }

            mapping[command.Kind] = new OpenApiSchemaReference(id, document);
            NarrowSubmitResponses(document, command, id);
        }
    }

    /// <summary>A command's submit route answers with its own kind of operation, so an SDK's submit method returns the typed one.</summary>
    private static void NarrowSubmitResponses(OpenApiDocument document, CommandDescriptor command, string schemaId)
    {
        if (document.Paths?.Find(command.Route)?.Operations?.Find(HttpMethod.Post) is not { } submit)
        {
            return;
        }

        foreach (var response in submit.Responses?.Values.OfType<OpenApiResponse>() ?? [])
        {
            foreach (var media in response.Content?.Values.OfType<OpenApiMediaType>() ?? [])
            {
                if (media.Schema is OpenApiSchemaReference { Reference.Id: BaseSchemaId })
                {
                    media.Schema = new OpenApiSchemaReference(schemaId, document);
                }
            }
        }
    }

    /// <summary>The result type's schema: a reference to a component (added if new), or inline for types without a schema id.</summary>
    private static async Task<IOpenApiSchema> ResultSchemaAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context,
        Type resultType, CancellationToken cancellationToken)
    {
        var schema = await context.GetOrCreateSchemaAsync(resultType, null, cancellationToken).ConfigureAwait(false);
        var options = context.ApplicationServices.GetRequiredService<IOptionsMonitor<OpenApiOptions>>().Get(context.DocumentName);
        var json = context.ApplicationServices.GetRequiredService<IOptions<HttpJsonOptions>>().Value.SerializerOptions;
        string? id = options.CreateSchemaReferenceId(json.GetTypeInfo(resultType));
        if (id is null)
        {
            return schema;
        }

        if (document.Components?.Schemas?.ContainsKey(id) != true)
        {
            document.AddComponent(id, schema);
        }

        return new OpenApiSchemaReference(id, document);
    }

    /// <summary>
    /// ASP.NET Core drops a property's <see cref="DescriptionAttribute"/> when the property's schema is a nullable
    /// reference; put it back (a plain <c>$ref</c> can carry none in OpenAPI 3.0, its target has its own).
    /// </summary>
    private static void DescribeProperties(OpenApiSchema schema, Type type)
    {
        foreach (var property in type.GetProperties())
        {
            string name = JsonNamingPolicy.CamelCase.ConvertName(property.Name);
            if (schema.Properties.Find(name) is OpenApiSchema { Description: null } propertySchema &&
                property.GetCustomAttribute<DescriptionAttribute>() is { } description)
            {
                propertySchema.Description = description.Description;
            }
        }
    }

    /// <summary>
    /// Allows null, spelled as ASP.NET Core spells a nullable reference: <c>oneOf: [ { null }, { $ref } ]</c> (OpenAPI 3.0
    /// ignores anything beside a <c>$ref</c>); <see cref="SchemaNormalisation"/> then gives the null branch its type.
    /// </summary>
    private static OpenApiSchema Nullable(IOpenApiSchema schema, string description)
    {
        if (schema is OpenApiSchema { Type: { } type } inline)
        {
            inline.Type = type | JsonSchemaType.Null;
            inline.Description ??= description;
            return inline;
        }

        return new OpenApiSchema
        {
            OneOf = [new OpenApiSchema { Type = JsonSchemaType.Null }, schema],
            Description = description,
        };
    }
}
