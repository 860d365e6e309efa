using Microsoft.OpenApi;

namespace PollingApi.Operations.Http.OpenApi;

/// <summary>
/// Describes the tags the operations API groups its routes under (generated SDKs and Swagger UI show them; the
/// linter asks for them). A route under a new tag gets its description here.
/// </summary>
internal static class TagDescriptions
{
    private static readonly Dictionary<string, string> Descriptions = new(StringComparer.Ordinal)
    {
        ["Commands"] = "Submit a command: each answers `202 Accepted` at once with an operation to poll.",
        ["Operations"] = "The status monitors of submitted commands: poll an operation until it is done.",
        ["Admin"] = "For operators: checks of the stored data.",
    };

    public static void Apply(OpenApiDocument document)
    {
        foreach (var tag in document.Tags?.OfType<OpenApiTag>() ?? [])
        {
            if (tag is { Name: { } name, Description: null } && Descriptions.TryGetValue(name, out string? description))
            {
                tag.Description = description;
            }
        }
    }
}
