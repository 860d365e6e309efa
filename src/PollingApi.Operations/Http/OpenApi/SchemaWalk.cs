using Microsoft.OpenApi;

namespace PollingApi.Operations.Http.OpenApi;

/// <summary>
/// Every concrete schema of a document (components, parameters, request bodies, responses, headers and all they
/// nest) and the ids of the components they refer to. References are leaves: what they point at is a component,
/// visited in its own right.
/// </summary>
internal sealed class SchemaWalk
{
    private SchemaWalk(IReadOnlyList<OpenApiSchema> schemas, IReadOnlySet<string> referencedIds)
    {
        Schemas = schemas;
        ReferencedIds = referencedIds;
    }

    public IReadOnlyList<OpenApiSchema> Schemas { get; }

    public IReadOnlySet<string> ReferencedIds { get; }

    public static SchemaWalk Of(OpenApiDocument document)
    {
        ArgumentNullException.ThrowIfNull(document);

        var pending = new Stack<IOpenApiSchema>();
        foreach (var component in document.Components?.Schemas?.Values ?? [])
        {
            pending.Push(component);
        }

        foreach (var operation in document.Paths?.Values.SelectMany(path => path.Operations?.Values.AsEnumerable() ?? []) ?? [])
        {
            PushAll(pending, operation.Parameters?.Select(parameter => parameter.Schema));
            PushAll(pending, operation.RequestBody?.Content?.Values.Select(media => media.Schema));
            foreach (var response in operation.Responses?.Values.AsEnumerable() ?? [])
            {
                PushAll(pending, response.Content?.Values.Select(media => media.Schema));
                PushAll(pending, response.Headers?.Values.Select(header => header.Schema));
            }
        }

        var schemas = new List<OpenApiSchema>();
        var seen = new HashSet<OpenApiSchema>(ReferenceEqualityComparer.Instance);
        var referenced = new HashSet<string>(StringComparer.Ordinal);
        while (pending.TryPop(out var next))
        {
            switch (next)
            {
                case OpenApiSchemaReference { Reference.Id: { } id }:
                    referenced.Add(id);
                    break;
                case OpenApiSchema schema when seen.Add(schema):
                    schemas.Add(schema);
                    PushAll(pending, Children(schema));
                    break;
            }
        }

        return new SchemaWalk(schemas, referenced);
    }

    private static void PushAll(Stack<IOpenApiSchema> pending, IEnumerable<IOpenApiSchema?>? schemas)
    {
        foreach (var schema in schemas ?? [])
        {
            if (schema is not null)
            {
                pending.Push(schema);
            }
        }
    }

    private static IEnumerable<IOpenApiSchema?> Children(OpenApiSchema schema) =>
        (schema.Properties?.Values ?? [])
        .Concat(schema.AllOf ?? [])
        .Concat(schema.OneOf ?? [])
        .Concat(schema.AnyOf ?? [])
        .Append(schema.Items)
        .Append(schema.AdditionalProperties)
        .Append(schema.Not);
}
