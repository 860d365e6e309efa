using System.Net;
using Microsoft.AspNetCore.HttpOverrides;

namespace PollingApi;

/// <summary>
/// The <c>ForwardedHeaders</c> configuration section: behind a reverse proxy, links and <c>Location</c> headers use
/// the scheme, host and path prefix the proxy reports in <c>X-Forwarded-Proto</c>, <c>X-Forwarded-Host</c> and
/// <c>X-Forwarded-Prefix</c>. Off by default; only the listed proxies are believed (loopback when none is listed).
/// </summary>
internal sealed class ForwardedHeadersSettings
{
    public const string SectionName = "ForwardedHeaders";

    public bool Enabled { get; set; }

    /// <summary>Addresses of proxies whose headers are believed, e.g. <c>10.0.0.5</c>.</summary>
    public string[] KnownProxies { get; set; } = [];

    /// <summary>Networks of proxies whose headers are believed, in CIDR form, e.g. <c>10.0.0.0/8</c>.</summary>
    public string[] KnownNetworks { get; set; } = [];

    /// <summary>Host names a proxy may forward; empty allows any.</summary>
    public string[] AllowedHosts { get; set; } = [];

    public void Apply(ForwardedHeadersOptions options)
    {
        options.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto
                                   | ForwardedHeaders.XForwardedHost | ForwardedHeaders.XForwardedPrefix;
        foreach (string proxy in KnownProxies)
        {
            options.KnownProxies.Add(IPAddress.TryParse(proxy, out var address)
                ? address
                : throw new InvalidOperationException($"ForwardedHeaders:KnownProxies has '{proxy}', which is not an IP address."));
        }

        foreach (string network in KnownNetworks)
        {
            options.KnownIPNetworks.Add(System.Net.IPNetwork.TryParse(network, out var parsed)
                ? parsed
                : throw new InvalidOperationException($"ForwardedHeaders:KnownNetworks has '{network}', which is not a CIDR network."));
        }

        foreach (string host in AllowedHosts)
        {
            options.AllowedHosts.Add(host);
        }
    }
}
