using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace PollingApi.Operations.Http.OpenApi;

/// <summary>
/// Documents what a webhook receiver gets, as a callback of <c>POST /v1/webhooks</c> (OpenAPI 3.0 has no top-level
/// webhooks): a signed POST to the subscription's <c>url</c> whose body is a <c>WebhookEvent</c>, so generated SDKs and
/// docs show the payload type and the Standard Webhooks headers.
/// </summary>
internal sealed class WebhookCallbackTransformer : IOpenApiDocumentTransformer
{
    public const string EventSchemaId = "WebhookEvent";

    public Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        if (document.Paths?.Find("/v1/webhooks")?.Operations?.Find(HttpMethod.Post) is not { } create)
        {
            return Task.CompletedTask;
        }

        document.Components ??= new OpenApiComponents();
        document.Components.Schemas ??= new Dictionary<string, IOpenApiSchema>();
        document.Components.Schemas[EventSchemaId] = new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Description = "The body of every webhook delivery.",
            Required = new HashSet<string> { "type", "timestamp", "data" },
            Properties = new Dictionary<string, IOpenApiSchema>
            {
                ["type"] = new OpenApiSchema
                {
                    Type = JsonSchemaType.String,
                    Description = "What happened: the operation ended (operation.succeeded, operation.failed, operation.cancelled), or a test ping.",
                    Enum = ["operation.succeeded", "operation.failed", "operation.cancelled", "webhook.test"],
                },
                ["timestamp"] = new OpenApiSchema { Type = JsonSchemaType.String, Format = "date-time", Description = "When it happened." },
                ["data"] = new OpenApiSchemaReference(OperationSchemas.BaseSchemaId, document),
            },
        };

        var delivery = new OpenApiOperation
        {
            OperationId = "ReceiveWebhookEvent",
            Summary = "An event, as the receiver gets it",
            Description = """
                Sent to the subscription's URL when one of its operations ends. Verify `webhook-signature` with any Standard
                Webhooks library and the subscription's `whsec_` secret; deduplicate by `webhook-id`, which every retry of a
                delivery repeats. Answer 2xx to accept; 408, 429 and 5xx (or no answer) are retried, after `Retry-After`
                when given; 410 disables the subscription; any other answer fails the delivery.
                """,
            Parameters =
            [
                Header("webhook-id", "The delivery's id, the same on every attempt (msg_...)."),
                Header("webhook-timestamp", "When this attempt was sent, in Unix seconds."),
                Header("webhook-signature", "v1, and the base64 HMAC-SHA256 of '{webhook-id}.{webhook-timestamp}.{body}' with the secret."),
            ],
            RequestBody = new OpenApiRequestBody
            {
                Required = true,
                Content = new Dictionary<string, OpenApiMediaType>
                {
                    ["application/json"] = new OpenApiMediaType { Schema = new OpenApiSchemaReference(EventSchemaId, document) },
                },
            },
            Responses = new OpenApiResponses
            {
                ["200"] = new OpenApiResponse { Description = "Accepted (any 2xx)." },
                ["410"] = new OpenApiResponse { Description = "The receiver is gone: the subscription is disabled." },
            },
        };
        create.Callbacks ??= new Dictionary<string, IOpenApiCallback>();
        create.Callbacks["operationEvent"] = new OpenApiCallback
        {
            PathItems = new Dictionary<RuntimeExpression, IOpenApiPathItem>
            {
                [RuntimeExpression.Build("{$request.body#/url}")] = new OpenApiPathItem
                {
                    Operations = new Dictionary<HttpMethod, OpenApiOperation> { [HttpMethod.Post] = delivery },
                },
            },
        };
        return Task.CompletedTask;
    }

    private static OpenApiParameter Header(string name, string description) => new()
    {
        Name = name,
        In = ParameterLocation.Header,
        Required = true,
        Description = description,
        Schema = new OpenApiSchema { Type = JsonSchemaType.String },
    };
}
