using PollingApi.Operations.Security;

namespace PollingApi;

/// <summary>Says at start-up who may call the API: a warning when anyone may, otherwise how to make a key.</summary>
internal static partial class AccessWarnings
{
    public static void Log(WebApplication app)
    {
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("PollingApi.Access");
        var configuration = app.Configuration.GetSection("Authentication");
        if (configuration.GetValue<bool>("AllowAnonymous"))
        {
            string[] scopes = configuration["AnonymousScopes"] is { } configured && !string.IsNullOrWhiteSpace(configured)
                ? configured.Split(' ', StringSplitOptions.RemoveEmptyEntries)
                : [OperationScopes.Submit, OperationScopes.Read, OperationScopes.Manage];
            AnonymousAllowed(logger, configuration["AnonymousTenant"] ?? "dev", string.Join(", ", scopes.Distinct(StringComparer.Ordinal)));
        }
        else
        {
            KeysRequired(logger);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message =
        "Callers without credentials are let in as tenant {Tenant} with the scopes {Scopes} " +
        "(Authentication:AllowAnonymous, AnonymousScopes). Turn it off wherever others can reach the API.")]
    private static partial void AnonymousAllowed(ILogger logger, string tenant, string scopes);

    [LoggerMessage(Level = LogLevel.Information, Message =
        "Every /v1 request needs an API key in X-Api-Key (or a bearer token when Authentication:Jwt is configured). Create a key with: " +
        "dotnet PollingApi.dll api-keys create --tenant <tenant> --scopes operations:submit,operations:read,operations:manage")]
    private static partial void KeysRequired(ILogger logger);
}
