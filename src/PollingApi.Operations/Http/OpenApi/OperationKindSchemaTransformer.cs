using Microsoft.AspNetCore.OpenApi;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.OpenApi;

namespace PollingApi.Operations.Http.OpenApi;

/// <summary>
/// Types each command's result in the OpenAPI document. The operation schema becomes the base of an inheritance
/// hierarchy discriminated by <c>kind</c>: per registered command a <c>&lt;Kind&gt;Operation</c> schema
/// (<c>allOf</c> the base plus a typed <c>result</c>), so generated SDKs get a class per command with a typed
/// result. Also tidies what generators and linters read (<see cref="SchemaNormalisation"/>, <see cref="TagDescriptions"/>).
/// </summary>
internal sealed class OperationKindSchemaTransformer : IOpenApiDocumentTransformer
{
    public async Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(document);
        ArgumentNullException.ThrowIfNull(context);

        var commands = context.ApplicationServices.GetRequiredService<CommandRegistry>();
        await OperationSchemas.AddTypedResultsAsync(document, context, commands, cancellationToken).ConfigureAwait(false);
        SchemaNormalisation.Apply(document);
        TagDescriptions.Apply(document);
    }
}
