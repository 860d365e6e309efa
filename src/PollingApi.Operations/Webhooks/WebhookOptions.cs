using Microsoft.Extensions.Options;

namespace PollingApi.Operations.Webhooks;

/// <summary>The <c>Webhooks</c> configuration section.</summary>
internal sealed class WebhookOptions
{
    public const string SectionName = "Webhooks";

    /// <summary>Accept <c>http://</c> receiver URLs as well as <c>https://</c> (for development and tests).</summary>
    public bool AllowHttp { get; set; }

    /// <summary>
    /// Deliver to loopback, private, link-local, carrier-grade NAT and other non-public addresses. Off: a receiver URL
    /// whose host resolves to such an address (checked when the connection is made, not only when the URL is given) is
    /// refused, so a subscription cannot make the server call into its own network.
    /// </summary>
    public bool AllowPrivateNetworks { get; set; }

    /// <summary>How long one delivery may take, connection included.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The absolute base URL the operation links in deliveries start with (e.g. https://api.example.com); relative links when unset.</summary>
    public string? PublicBaseUrl { get; set; }

    /// <summary>Subscriptions a tenant may have.</summary>
    public int MaxSubscriptionsPerTenant { get; set; } = 100;
}

internal sealed class WebhookOptionsValidator : IValidateOptions<WebhookOptions>
{
    public ValidateOptionsResult Validate(string? name, WebhookOptions options)
    {
        var failures = new List<string>();
        if (options.Timeout < TimeSpan.FromSeconds(1) || options.Timeout > TimeSpan.FromMinutes(2))
        {
            failures.Add($"Webhooks:Timeout must be 00:00:01 to 00:02:00, not {options.Timeout}.");
        }

        if (options.PublicBaseUrl is { Length: > 0 } baseUrl
            && (!Uri.TryCreate(baseUrl, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https")))
        {
            failures.Add($"Webhooks:PublicBaseUrl must be an absolute http(s) URL, not '{baseUrl}'.");
        }

        if (options.MaxSubscriptionsPerTenant is < 1 or > 10_000)
        {
            failures.Add($"Webhooks:MaxSubscriptionsPerTenant must be 1 to 10000, not {options.MaxSubscriptionsPerTenant}.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
