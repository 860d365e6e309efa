using System.Collections.Frozen;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace PollingApi.Operations.Dashboard;

/// <summary>
/// The operator dashboard: three static files embedded in this assembly (no CDN, no build step), served under one path.
/// The page itself is anonymous and holds no data; everything it shows it reads from the public JSON API with the key
/// the operator types in, so it shows nothing that key could not already read.
/// </summary>
public static class OperationsDashboard
{
    /// <summary>Where the dashboard is served unless another path is given.</summary>
    public const string DefaultPath = "/dashboard";

    // The page's scripts and styles come from its own origin only; it calls only its own API; it cannot be framed.
    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

    private static readonly FrozenDictionary<string, Asset> Assets = LoadAssets();

    /// <summary>
    /// Serves the dashboard at <paramref name="path"/> (<c>/dashboard</c> by default): the page at <c>{path}/</c>, its
    /// script and styles beside it. Its data calls need a key with the <c>admin</c> scope (or the anonymous development
    /// caller, when that has it).
    /// </summary>
    public static IEndpointRouteBuilder MapOperationsDashboard(this IEndpointRouteBuilder endpoints, string path = DefaultPath)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string prefix = "/" + path.Trim('/');
        string folder = prefix[(prefix.LastIndexOf('/') + 1)..];

        // The page's links are relative ("dashboard.js", "../v1/..."), so it must be addressed as a folder; a relative
        // Location keeps that right behind a proxy that adds a path prefix.
        // (Routing matches "/dashboard" and "/dashboard/" alike, so one endpoint tells them apart.)
        endpoints.MapGet(prefix, (HttpContext http) => http.Request.Path.Value?.EndsWith('/') == true
                ? Serve(http, "index.html")
                : Results.Redirect(folder + "/", permanent: false, preserveMethod: false))
            .ExcludeFromDescription();
        endpoints.MapGet(prefix + "/{file}", (HttpContext http, string file) => Serve(http, file)).ExcludeFromDescription();
        return endpoints;
    }

    private static IResult Serve(HttpContext http, string file)
    {
        if (!Assets.TryGetValue(file, out var asset))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, type: ProblemTypes.RouteNotFound,
                title: "The resource does not exist.", detail: "The dashboard has no such file.");
        }

        var headers = http.Response.Headers;
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers["Referrer-Policy"] = "no-referrer";
        headers.ETag = asset.ETag;
        // Revalidated on every load (a 304 costs a few bytes), so a new version shows at once after an upgrade.
        headers.CacheControl = "no-cache";
        if (http.Request.Headers.IfNoneMatch.Any(value => value is not null && value.Contains(asset.ETag, StringComparison.Ordinal)))
        {
            return TypedResults.StatusCode(StatusCodes.Status304NotModified);
        }

        return TypedResults.Bytes(asset.Content, asset.ContentType);
    }

    private static FrozenDictionary<string, Asset> LoadAssets()
    {
        var assembly = typeof(OperationsDashboard).Assembly;
        const string ResourcePrefix = "PollingApi.Operations.Dashboard.";
        var assets = new Dictionary<string, Asset>(StringComparer.Ordinal);
        foreach (string name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(name)
                               ?? throw new InvalidOperationException($"The embedded resource {name} cannot be read.");
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            byte[] content = buffer.ToArray();
            string file = name[ResourcePrefix.Length..];
            string etag = $"\"{Convert.ToHexStringLower(SHA256.HashData(content).AsSpan(0, 12))}\"";
            assets[file] = new Asset(content, ContentTypeOf(file), etag);
        }

        return assets.ToFrozenDictionary(StringComparer.Ordinal);
    }

    private static string ContentTypeOf(string file) => Path.GetExtension(file) switch
    {
        ".html" => "text/html; charset=utf-8",
        ".js" => "text/javascript; charset=utf-8",
        ".css" => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    };

    private sealed record Asset(byte[] Content, string ContentType, string ETag);
}
