using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using PollingApi.Operations.Security;

namespace PollingApi.Operations.Http.OpenApi;

/// <summary>
/// Describes how callers authenticate: the <c>ApiKey</c> (<c>X-Api-Key</c>) and <c>Bearer</c> (JWT) security schemes,
/// and on every operation behind a scope policy a requirement of either, naming the scope.
/// </summary>
internal sealed class SecurityDocumentationTransformer : IOpenApiDocumentTransformer, IOpenApiOperationTransformer
{
    public const string ApiKeyScheme = "ApiKey";
    public const string BearerScheme = "Bearer";

    public Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes[ApiKeyScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.ApiKey,
            In = ParameterLocation.Header,
            Name = ApiKeyAuthenticationHandler.HeaderName,
            Description = "An API key made with `api-keys create --tenant <tenant> --scopes <scopes>`; it carries a tenant and scopes.",
        };
        document.Components.SecuritySchemes[BearerScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            BearerFormat = "JWT",
            Description = "A JWT from the configured authority (Authentication:Jwt), where the deployment accepts them; its claims name the tenant and the scopes.",
        };
        return Task.CompletedTask;
    }

    public Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        var metadata = context.Description.ActionDescriptor.EndpointMetadata;
        var scopes = metadata.OfType<ScopeRequirement>().Select(required => required.Scope)
            .Concat(metadata.OfType<IAuthorizeData>().Select(data => data.Policy).OfType<string>())
            .Distinct(StringComparer.Ordinal).ToList();
        if (scopes.Count == 0)
        {
            return Task.CompletedTask;
        }

        operation.Security =
        [
            new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(ApiKeyScheme, context.Document)] = scopes },
            new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(BearerScheme, context.Document)] = scopes },
        ];
        return Task.CompletedTask;
    }
}
