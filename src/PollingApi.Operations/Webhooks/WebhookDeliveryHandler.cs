using System.ComponentModel;
using System.Text.Json;
using Microsoft.Extensions.Options;
using PollingApi.Operations.Handlers;
using PollingApi.Operations.Http;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Webhooks;

/// <summary>One delivery, as the trigger (or a test ping) stored it: the event and the subscription it goes to.</summary>
/// <param name="SubscriptionId">The subscription.</param>
/// <param name="Type">operation.succeeded, operation.failed, operation.cancelled or webhook.test.</param>
/// <param name="OccurredAt">When the event happened.</param>
/// <param name="Data">The operation as it was when it ended (or the test's note).</param>
internal sealed record WebhookDelivery(Guid SubscriptionId, string Type, DateTime OccurredAt, JsonElement Data);

/// <summary>How a delivery ended.</summary>
/// <param name="Delivered">Whether the receiver accepted it (a 2xx answer).</param>
/// <param name="StatusCode">The receiver's status code; null when the subscription was gone before the delivery.</param>
/// <param name="Note">Why nothing was sent, when nothing was.</param>
[Description("How a webhook delivery ended.")]
internal sealed record WebhookDeliveryResult(bool Delivered, int? StatusCode, string? Note);

/// <summary>
/// Delivers one event: signs it the Standard Webhooks way and POSTs it. A 2xx is a success; 410 Gone disables the
/// subscription; 408, 429 and 5xx, a timeout or a dropped connection are transient (retried with backoff, or after the
/// receiver's Retry-After); any other answer, or a receiver the configuration does not allow, fails the delivery.
/// </summary>
internal sealed class WebhookDeliveryHandler(WebhookStore store, WebhookSender sender, IOptions<WebhookOptions> options, TimeProvider timeProvider)
    : IOperationHandler<WebhookDelivery, WebhookDeliveryResult>
{
    public const string Kind = "webhooks.deliver";

    public async Task<WebhookDeliveryResult> HandleAsync(WebhookDelivery request, OperationContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        var subscription = await store.FindAsync(request.SubscriptionId, owner: null, cancellationToken).ConfigureAwait(false);
        if (subscription is null)
        {
            return new WebhookDeliveryResult(false, null, "The subscription was deleted; nothing was sent.");
        }

        if (subscription.DisabledAt is not null)
        {
            return new WebhookDeliveryResult(false, null, "The subscription is disabled; nothing was sent.");
        }

        string body = JsonSerializer.Serialize(new WebhookEvent(request.Type, request.OccurredAt, Data(request)), OperationJson.Options);
        // The same id on every attempt: receivers deduplicate by it.
        string messageId = "msg_" + context.OperationId.ToString("N");
        long timestamp = timeProvider.GetUtcNow().ToUnixTimeSeconds();
        WebhookAnswer answer;
        try
        {
            answer = await sender.SendAsync(subscription.Url, subscription.Secret, messageId, timestamp, body, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex) when (FindRefusal(ex) is not null)
        {
            throw new PermanentOperationFailureException(WebhookProblemTypes.DestinationNotAllowed, "The receiver's address is not allowed.",
                "Its host resolves only to loopback, private or link-local addresses (see Webhooks:AllowPrivateNetworks).");
        }
        catch (TaskCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"The receiver did not answer within {options.Value.Timeout}.", ex);
        }

        return answer.StatusCode switch
        {
            >= 200 and < 300 => new WebhookDeliveryResult(true, answer.StatusCode, null),
            410 => await DisableAsync(subscription, cancellationToken).ConfigureAwait(false),
            408 or 429 or >= 500 => throw (answer.RetryAfter is { } wait
                ? new RetryOperationLaterException(wait, $"The receiver answered {answer.StatusCode} with Retry-After {wait}.")
                : new HttpRequestException($"The receiver answered {answer.StatusCode}.")),
            _ => throw new PermanentOperationFailureException(WebhookProblemTypes.Rejected, "The receiver rejected the delivery.",
                $"It answered {answer.StatusCode}."),
        };
    }

    private async Task<WebhookDeliveryResult> DisableAsync(WebhookSubscriptionRow subscription, CancellationToken cancellationToken)
    {
        await store.DisableAsync(subscription.Id, "The receiver answered 410 Gone.", timeProvider.GetUtcNow().UtcDateTime, cancellationToken)
            .ConfigureAwait(false);
        throw new PermanentOperationFailureException(WebhookProblemTypes.Gone, "The receiver is gone: the subscription is disabled.",
            "It answered 410 Gone; no more events are sent to it.");
    }

    private object Data(WebhookDelivery request)
    {
        if (!request.Type.StartsWith("operation.", StringComparison.Ordinal))
        {
            return request.Data;
        }

        var data = request.Data;
        var row = new OperationRow
        {
            Id = data.GetProperty("id").GetGuid(),
            Owner = data.GetProperty("tenant").GetString() ?? "",
            Kind = data.GetProperty("kind").GetString() ?? "",
            Status = data.GetProperty("status").GetString() ?? "",
            Result = RawOrNull(data, "result"),
            Error = RawOrNull(data, "error"),
            Progress = RawOrNull(data, "progress"),
            Attempts = data.GetProperty("attempts").GetInt32(),
            MaxAttempts = data.GetProperty("maxAttempts").GetInt32(),
            CancelRequested = data.GetProperty("cancelRequested").GetBoolean(),
            CreatedAt = data.GetProperty("createdAt").GetDateTime().ToUniversalTime(),
            UpdatedAt = data.GetProperty("updatedAt").GetDateTime().ToUniversalTime(),
            CompletedAt = data.GetProperty("completedAt").ValueKind == JsonValueKind.Null
                ? null
                : data.GetProperty("completedAt").GetDateTime().ToUniversalTime(),
            Version = data.GetProperty("version").GetInt32(),
        };
        string self = $"{options.Value.PublicBaseUrl?.TrimEnd('/')}{OperationLinkBuilder.Prefix}/{row.Id}";
        // Deliveries are sent for operations that ended, which have no queue estimate.
        return OperationResource.From(row, self, queue: null);
    }

    private static string? RawOrNull(JsonElement data, string name) =>
        data.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value.GetRawText() : null;

    private static WebhookDestinationRefusedException? FindRefusal(Exception? exception)
    {
        for (; exception is not null; exception = exception.InnerException)
        {
            if (exception is WebhookDestinationRefusedException refused)
            {
                return refused;
            }
        }

        return null;
    }
}

/// <summary>The body of every delivery.</summary>
internal sealed record WebhookEvent(string Type, DateTime Timestamp, object Data);

/// <summary>The problem types a delivery can fail with.</summary>
internal static class WebhookProblemTypes
{
    public const string DestinationNotAllowed = ProblemTypes.Prefix + "webhook-destination-not-allowed";
    public const string Rejected = ProblemTypes.Prefix + "webhook-rejected";
    public const string Gone = ProblemTypes.Prefix + "webhook-gone";
}
