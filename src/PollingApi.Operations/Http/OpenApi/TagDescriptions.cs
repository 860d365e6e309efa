using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace PollingApi.Operations.Http.OpenApi;

/// <summary>
/// Describes the tags the operations API groups its routes under (generated SDKs and Swagger UI show them; the
/// linter asks for them). A route of the engine under a new tag gets its description here; the host describes
/// its own tags with <see cref="OpenApiTagDescriptions.AddTagDescription"/>.
/// </summary>
internal static class TagDescriptions
{
    private static readonly Dictionary<string, string> Descriptions = new(StringComparer.Ordinal)
    {
        ["Commands"] = "Submit a command: each answers `202 Accepted` at once with an operation to poll.",
        ["Operations"] = "The status monitors of submitted commands: poll an operation until it is done.",
        ["Admin"] = "For operators: what every kind is doing, failures grouped and retried, checks of the stored data.",
        ["Webhooks"] = "Be told instead of polling: signed POSTs (Standard Webhooks) to your URL when operations end.",
    };

    public static void Apply(OpenApiDocument document)
    {
        foreach (var (name, description) in Descriptions)
        {
            Describe(document, name, description);
        }
    }

    /// <summary>Sets the description of the tag <paramref name="name"/> if the document has it and it has none yet.</summary>
    internal static void Describe(OpenApiDocument document, string name, string description)
    {
        foreach (var tag in document.Tags?.OfType<OpenApiTag>() ?? [])
        {
            if (tag is { Description: null } && string.Equals(tag.Name, name, StringComparison.Ordinal))
            {
                tag.Description = description;
            }
        }
    }
}

/// <summary>Describes the tags of the host's own routes in the OpenAPI document.</summary>
public static class OpenApiTagDescriptions
{
    /// <summary>
    /// Gives the tag <paramref name="name"/> (as in <c>WithTags</c>) a description in the OpenAPI document; generated
    /// SDKs and Swagger UI show it.
    /// </summary>
    /// <param name="options">The OpenAPI document's options.</param>
    /// <param name="name">The tag, e.g. <c>Ledger</c>.</param>
    /// <param name="description">What the routes under the tag are for (CommonMark).</param>
    public static OpenApiOptions AddTagDescription(this OpenApiOptions options, string name, string description)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(description);
        return options.AddDocumentTransformer((document, _, _) =>
        {
            TagDescriptions.Describe(document, name, description);
            return Task.CompletedTask;
        });
    }
}
