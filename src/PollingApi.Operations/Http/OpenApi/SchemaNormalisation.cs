using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.OpenApi;

namespace PollingApi.Operations.Http.OpenApi;

/// <summary>
/// Rewrites the schema spellings that generators misread into plain OpenAPI 3.0:
/// <list type="bullet">
/// <item>an enum of strings without a <c>type</c> gets <c>type: string</c> (else generators make it an object or a number);</item>
/// <item>a nullable reference, which ASP.NET Core writes as <c>oneOf: [ { enum: [null], nullable: true }, { $ref } ]</c>,
/// gets the <c>type</c> beside <c>nullable</c> that OpenAPI 3.0.3 requires (else <c>nullable</c> has no effect and
/// linters reject it): <c>oneOf: [ { type: object, nullable: true, enum: [null] }, { $ref } ]</c>. NSwag reads this
/// as a nullable property of the referenced class, where the other 3.0 spelling, <c>{ type: object, nullable: true,
/// allOf: [ { $ref } ] }</c>, makes it generate an empty subclass per property;</item>
/// <item>a component nothing refers to any longer (the untyped <c>JsonElement</c> the typed results replace) is dropped.</item>
/// </list>
/// </summary>
internal static class SchemaNormalisation
{
    /// <summary>Components that only exist because a type had them once; dropped when nothing refers to them.</summary>
    private static readonly string[] DroppableWhenUnused = [nameof(JsonElement), nameof(JsonNode), nameof(JsonObject)];

    /// <summary>
    /// Descriptions for component schemas whose types carry none. A property whose schema is a <c>$ref</c> cannot have
    /// one of its own in OpenAPI 3.0, so this is where <c>status</c> and a queue's <c>reason</c> are explained.
    /// </summary>
    private static readonly Dictionary<string, string> Descriptions = new(StringComparer.Ordinal)
    {
        [nameof(OperationState)] = "pending and running are not done; succeeded, failed and cancelled are terminal.",
        [nameof(Model.OperationQueueReason)] = Model.OperationQueue.ReasonDescription,
    };

    public static void Apply(OpenApiDocument document)
    {
        var components = document.Components?.Schemas;
        if (components is null)
        {
            return;
        }

        foreach (var (id, component) in components)
        {
            if (component is OpenApiSchema schema && Descriptions.TryGetValue(id, out string? description))
            {
                schema.Description ??= description;
            }
        }

        var walk = SchemaWalk.Of(document);
        foreach (var schema in walk.Schemas)
        {
            TypeStringEnum(schema);
        }

        // After the enums have their types: a null branch takes the type of what the reference points at.
        foreach (var schema in walk.Schemas)
        {
            TypeNullBranch(schema, components);
        }

        var referenced = walk.ReferencedIds.Concat(DiscriminatorTargets(components)).ToHashSet(StringComparer.Ordinal);
        foreach (string id in DroppableWhenUnused)
        {
            if (!referenced.Contains(id))
            {
                components.Remove(id);
            }
        }
    }

    private static void TypeStringEnum(OpenApiSchema schema)
    {
        if (schema.Type is null && schema.Enum is { Count: > 0 } values &&
            values.All(value => value is JsonValue v && v.GetValueKind() == JsonValueKind.String))
        {
            schema.Type = JsonSchemaType.String;
        }
    }

    /// <summary>
    /// <c>oneOf: [ { enum: [null], nullable: true }, { $ref } ]</c>: the null branch gets the type of what the reference
    /// points at. When that has no type (it accepts anything, null too) the <c>oneOf</c> would match null twice, and so
    /// reject it: the reference alone says it all.
    /// </summary>
    private static void TypeNullBranch(OpenApiSchema schema, IDictionary<string, IOpenApiSchema> components)
    {
        if (schema.OneOf is not { Count: 2 } oneOf)
        {
            return;
        }

        var reference = oneOf.OfType<OpenApiSchemaReference>().SingleOrDefault();
        var nullBranch = oneOf.OfType<OpenApiSchema>().SingleOrDefault();
        if (reference is null || nullBranch is not { Type: JsonSchemaType.Null } ||
            components.Find(reference.Reference.Id ?? "") is not { } target)
        {
            return;
        }

        if (target.Type is { } targetType)
        {
            nullBranch.Type = targetType | JsonSchemaType.Null;
            nullBranch.Enum = [null!];
        }
        else
        {
            schema.OneOf = null;
            schema.AllOf = [reference];
        }
    }

    private static IEnumerable<string> DiscriminatorTargets(IDictionary<string, IOpenApiSchema> components) =>
        components.Values.OfType<OpenApiSchema>()
            .SelectMany(schema => schema.Discriminator?.Mapping?.Values ?? [])
            .Select(reference => reference.Reference.Id)
            .OfType<string>();
}
