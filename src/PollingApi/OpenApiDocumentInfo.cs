using Microsoft.AspNetCore.OpenApi;

namespace PollingApi;

internal static class OpenApiDocumentInfo
{
    public static OpenApiOptions AddPollingApiDocumentInfo(this OpenApiOptions options)
    {
        options.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "PollingApi";
            document.Info.Version = "v1";
            document.Info.Description = """
                Asynchronous request-reply over HTTP. POST a command and get `202 Accepted` with an operation at once;
                poll the operation's `Location` until `done` is true (`202` + `Retry-After` while it runs, `200` when
                it has succeeded, failed or been cancelled). Errors are RFC 9457 problem details.
                """;
            // The document describes the API wherever it is deployed: no server URL is baked in.
            document.Servers = [];
            return Task.CompletedTask;
        });
        return options;
    }
}
