using System.Net;
using System.Net.Sockets;

namespace PollingApi.Operations.Webhooks;

/// <summary>
/// Which addresses a delivery may connect to. Checked on the addresses the host name resolves to when the connection is
/// made (so a name that later resolves to an internal address is refused too), not only on the URL.
/// </summary>
internal static class WebhookDestinations
{
    /// <summary>Whether a receiver URL is acceptable: absolute, https (or http when allowed), a host, no credentials, at most 2,000 characters.</summary>
    public static string? ProblemWith(string? url, WebhookOptions options)
    {
        if (string.IsNullOrWhiteSpace(url) || url.Length > 2000)
        {
            return "'url' must be an absolute URL of at most 2000 characters.";
        }

        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http") || string.IsNullOrEmpty(uri.Host))
        {
            return "'url' must be an absolute https URL.";
        }

        if (uri.Scheme == "http" && !options.AllowHttp)
        {
            return "'url' must use https (http is accepted only with Webhooks:AllowHttp).";
        }

        if (uri.UserInfo.Length > 0)
        {
            return "'url' must not carry a user name or password.";
        }

        if (!options.AllowPrivateNetworks && IPAddress.TryParse(uri.Host.Trim('[', ']'), out var literal) && IsNonPublic(literal))
        {
            return "'url' must not point at a loopback, private or link-local address.";
        }

        return null;
    }

    /// <summary>Loopback, private, link-local (cloud metadata included), carrier-grade NAT, unspecified, multicast and reserved ranges.</summary>
    public static bool IsNonPublic(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            byte[] b = address.GetAddressBytes();
            return b[0] == 0 || b[0] == 10 || b[0] == 127 || b[0] >= 224
                   || (b[0] == 100 && b[1] >= 64 && b[1] <= 127)
                   || (b[0] == 169 && b[1] == 254)
                   || (b[0] == 172 && b[1] >= 16 && b[1] <= 31)
                   || (b[0] == 192 && b[1] == 168)
                   || (b[0] == 192 && b[1] == 0 && b[2] == 0)
                   || (b[0] == 198 && b[1] is 18 or 19);
        }

        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            byte[] b = address.GetAddressBytes();
            return IPAddress.IsLoopback(address) || address.Equals(IPAddress.IPv6None) || address.IsIPv6LinkLocal || address.IsIPv6SiteLocal
                   || address.IsIPv6Multicast || (b[0] & 0xFE) == 0xFC
                   || (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B);
        }

        return true;
    }
}

/// <summary>The receiver's host resolves only to addresses deliveries may not reach.</summary>
internal sealed class WebhookDestinationRefusedException : Exception
{
    public WebhookDestinationRefusedException(string host)
        : base($"The receiver's host {host} resolves only to non-public addresses, which Webhooks:AllowPrivateNetworks does not allow.")
    {
    }

    public WebhookDestinationRefusedException()
    {
    }

    public WebhookDestinationRefusedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
