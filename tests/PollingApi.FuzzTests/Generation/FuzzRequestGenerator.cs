using System.Globalization;
using System.Text;

namespace PollingApi.FuzzTests.Generation;

/// <summary>
/// Makes request number N of a seed's sequence, always the same one: a hostile body, hostile headers, a hostile id,
/// a hostile query, an unexpected method, a junk path, or (about one in twelve) bytes for a raw socket.
/// </summary>
internal sealed class FuzzRequestGenerator(int seed, FuzzTargets targets, DateTimeOffset now)
{
    private const string ApiKeyHeader = "X-Api-Key";

    /// <summary>Families and their weights out of 100.</summary>
    private static readonly (string Family, int Weight)[] Families =
    [
        ("body", 34), ("header", 20), ("id", 12), ("query", 10), ("method", 8), ("path", 8), ("raw", 8),
    ];

    /// <summary>Routes the method and path families aim at; {op} is one of tenant A's operations, {account} an account.</summary>
    private static readonly string[] Routes =
    [
        "/v1/diagnostics/sleep", "/v1/accounts", "/v1/transfers", "/v1/operations", "/v1/operations/{op}", "/v1/operations/{op}/cancel",
        "/v1/operations/{op}/retry", "/v1/accounts/{account}", "/v1/admin/consistency", "/health/live", "/health/ready",
        "/openapi/v1.json", "/swagger", "/swagger/index.html", "/", "/v1", "/v1/admin/stats", "/metrics", "/v1/operations/{op}/events",
        "/v1/operations/{op}/attempts", "/v1/webhooks", "/dashboard", "/dashboard/", "/dashboard/dashboard.js", "/dashboard/..%2fappsettings.json",
        "/v1/admin/failures", "/v1/admin/failures/retry",
    ];

    private static readonly string[] QueryNames =
        ["status", "kind", "tenant", "errorType", "createdAfter", "createdBefore", "limit", "cursor", "wait", "Status", "LIMIT", "x", "", "%00", "limit[]", "cursor%00"];

    private readonly string _keyA = targets.TenantAKey;

    public FuzzRequest Generate(long number)
    {
        var random = SeededRandom.For(seed, number);
        int roll = random.Next(100);
        string family = Families[^1].Family;
        foreach (var (name, weight) in Families)
        {
            if (roll < weight)
            {
                family = name;
                break;
            }

            roll -= weight;
        }

        var request = family switch
        {
            "body" => Body(random, number),
            "header" => Header(random, number),
            "id" => Id(random, number),
            "query" => Query(random, number),
            "method" => Method(random, number),
            "path" => Path(random, number),
            _ => RawRequests.Generate(random, number, seed, targets, now),
        };
        return request with { MustNotReveal = Unrevealable(request) };
    }

    /// <summary>
    /// For a request sent with tenant B's key (and only that key): tenant A's ids, which no answer to it may contain,
    /// except the ones the request names itself (a problem's instance repeats the path).
    /// </summary>
    private IReadOnlyList<string> Unrevealable(FuzzRequest request)
    {
        var keys = request.Headers.Where(h => h.Key == ApiKeyHeader).Select(h => h.Value).ToList();
        if (keys is not [var key] || key != targets.TenantBKey)
        {
            return [];
        }

        string named = request.Target + (request.Body is null ? "" : Encoding.UTF8.GetString(request.Body));
        return [.. targets.TenantAIds.Where(id => !named.Contains(id, StringComparison.OrdinalIgnoreCase))];
    }

    private FuzzRequest Body(Random random, long number)
    {
        var route = random.Pick(CommandRoute.All);
        var (body, variant) = JsonBodyMutator.Mutate(random, route, targets);
        var headers = Defaults(number);
        headers.Insert(0, new("Content-Type", random.Chance(0.9) ? "application/json" : random.Pick(HostileValues.ContentTypes)));
        if (random.Chance(0.2))
        {
            // A small pool of keys, so that keys come back with other bodies (422) and under concurrency (one operation).
            headers.Add(new("Idempotency-Key", "fuzz-" + random.Next(20).ToString(CultureInfo.InvariantCulture)));
        }

        if (random.Chance(0.1))
        {
            headers.Add(new("Prefer", random.Pick(HostileValues.Prefers)));
        }

        return new FuzzRequest
        {
            Number = number, Family = "body", Variant = variant, Method = "POST", Target = route.Path, Headers = headers, Body = body,
        };
    }

    private FuzzRequest Header(Random random, long number)
    {
        // The carrier: a valid submit, a poll of a real operation, or the list.
        int carrier = random.Next(10);
        var op = random.Pick(targets.Operations);
        (string method, string target, byte[]? body) = carrier switch
        {
            < 5 => ("POST", CommandRoute.Sleep.Path, Encoding.UTF8.GetBytes("{\"durationMs\":1}")),
            < 8 => ("GET", $"/v1/operations/{op:D}", null),
            _ => ("GET", "/v1/operations", (byte[]?)null),
        };
        var headers = Defaults(number);
        if (body is not null)
        {
            headers.Insert(0, new("Content-Type", "application/json"));
        }

        string? host = null;
        var expect = Expectation.None;
        var variants = new List<string>();
        bool validKeyElsewhere = false;
        int attacks = random.Chance(0.7) ? 1 : 2;
        for (int i = 0; i < attacks; i++)
        {
            switch (random.Next(11))
            {
                case 0:
                    headers.RemoveAll(h => h.Key == "Content-Type");
                    if (!random.Chance(0.1))
                    {
                        headers.Insert(0, new("Content-Type", random.Pick(HostileValues.ContentTypes)));
                    }

                    body ??= Encoding.UTF8.GetBytes("{\"durationMs\":1}");
                    variants.Add("Content-Type");
                    break;
                case 1:
                    headers.Add(new("Idempotency-Key", random.Pick(HostileValues.IdempotencyKeys)));
                    variants.Add("Idempotency-Key");
                    break;
                case 2:
                    headers.Add(new("Prefer", random.Pick(HostileValues.Prefers)));
                    variants.Add("Prefer");
                    break;
                case 3:
                    headers.Add(new("If-None-Match", random.Pick(HostileValues.IfNoneMatches)));
                    variants.Add("If-None-Match");
                    break;
                case 4 or 5:
                    // Each key attack replaces the key the request had, so the last one decides what the answer must be.
                    (string variant, expect) = HostileKey(random, headers, target);
                    variants.Add(variant);
                    break;
                case 6:
                    bool bearerKeyA = random.Chance(0.2);
                    headers.Add(new("Authorization", bearerKeyA ? "Bearer " + _keyA : random.Pick(HostileValues.Authorizations)));
                    variants.Add(bearerKeyA ? "tenant A's key as a bearer token" : "Authorization");
                    // Whether the API takes a key as a bearer token is its choice: such a request is not "without a valid key".
                    validKeyElsewhere |= bearerKeyA;
                    break;
                case 7:
                    headers.RemoveAll(h => h.Key == "traceparent");
                    headers.Add(new("traceparent", random.Pick(HostileValues.TraceParents)));
                    variants.Add("traceparent");
                    break;
                case 8:
                    host = random.Pick(HostileValues.Hosts);
                    variants.Add("forged Host");
                    break;
                case 9:
                    int count = random.Pick([1, 1, 1, 50, 95, 150]);
                    for (int h = 0; h < count; h++)
                    {
                        headers.Add(count == 1 ? random.Pick(HostileValues.OtherHeaders) : new($"X-Fuzz-{h.ToString(CultureInfo.InvariantCulture)}", "v"));
                    }

                    variants.Add(count == 1 ? "odd header " + headers[^1].Key : $"{count.ToString(CultureInfo.InvariantCulture)} extra headers");
                    break;
                default:
                    int size = random.Pick([8000, 16_000, 33_000, 70_000]);
                    headers.Add(new("X-Fuzz-Large", new string('v', size)));
                    variants.Add($"a {size.ToString(CultureInfo.InvariantCulture)}-byte header");
                    break;
            }
        }

        if (validKeyElsewhere && expect == Expectation.RefusedWithoutValidKey)
        {
            expect = Expectation.None;
        }

        return new FuzzRequest
        {
            Number = number, Family = "header", Variant = $"{method} {Shape(target)}: {string.Join(", ", variants)}", Method = method,
            Target = target, Headers = headers, Host = host, Body = body, Expect = expect,
        };
    }

    /// <summary>Replaces tenant A's key with a missing, garbage or foreign one.</summary>
    private (string Variant, Expectation Expect) HostileKey(Random random, List<KeyValuePair<string, string>> headers, string target)
    {
        headers.RemoveAll(h => h.Key == ApiKeyHeader);
        string keyA = targets.TenantAKey;
        bool operationOfA = target.StartsWith("/v1/operations/", StringComparison.Ordinal);
        switch (random.Next(8))
        {
            case 0:
                return ("no X-Api-Key", Expectation.RefusedWithoutValidKey);
            case 1 or 2:
                headers.Add(new(ApiKeyHeader, random.Pick(HostileValues.ApiKeys)));
                return ("garbage X-Api-Key", Expectation.RefusedWithoutValidKey);
            case 3:
                headers.Add(new(ApiKeyHeader, targets.TenantBKey));
                return ("tenant B's key", operationOfA ? Expectation.NotFoundForOtherTenant : Expectation.None);
            case 4:
                string altered = random.Next(4) switch
                {
                    0 => keyA[..^1],
                    1 => keyA + "x",
                    2 => keyA.Insert(keyA.Length / 2, "\0"),
                    _ => keyA + ", " + targets.TenantBKey,
                };
                headers.Add(new(ApiKeyHeader, altered));
                return ("altered key", Expectation.RefusedWithoutValidKey);
            case 5:
                headers.Add(new(ApiKeyHeader, random.Chance(0.5) ? keyA.ToUpperInvariant() : keyA.ToLowerInvariant()));
                return ("key in another case", Expectation.None);
            case 6:
                headers.Add(new(ApiKeyHeader, targets.TenantBKey + ", " + keyA));
                return ("two keys in one header", Expectation.RefusedWithoutValidKey);
            default:
                headers.Add(new("Authorization", "Bearer " + random.Pick(HostileValues.ApiKeys)));
                return ("only a garbage bearer token", Expectation.RefusedWithoutValidKey);
        }
    }

    private FuzzRequest Id(Random random, long number)
    {
        int route = random.Next(7);
        bool accounts = route == 6;
        string id = random.Next(10) switch
        {
            < 6 => random.Pick(HostileValues.MalformedIds),
            6 => random.UnknownVersion7(now).ToString("D", CultureInfo.InvariantCulture),
            7 => random.RandomVersion4().ToString("D", CultureInfo.InvariantCulture),
            _ when accounts => (random.Chance(0.5) ? targets.AccountA : targets.AccountB).ToString("D", CultureInfo.InvariantCulture),
            _ => random.Pick(targets.Operations).ToString("D", CultureInfo.InvariantCulture),
        };
        bool known = targets.TenantAIds.Contains(id);
        var (method, target) = route switch
        {
            0 or 1 => ("GET", $"/v1/operations/{id}"),
            2 => ("GET", $"/v1/operations/{id}?wait={random.Pick(["0", "1", "-1", "x", "99999999999999999999999"])}"),
            3 => ("POST", $"/v1/operations/{id}/cancel"),
            4 => ("POST", $"/v1/operations/{id}/retry"),
            5 => ("DELETE", $"/v1/operations/{id}"),
            _ => ("GET", $"/v1/accounts/{id}"),
        };
        var headers = Defaults(number);
        var expect = Expectation.None;
        string variant = known ? "one of tenant A's ids" : FuzzRequest.Escape(Encoding.UTF8.GetBytes(id), 60);
        if (known && random.Chance(0.5))
        {
            headers.RemoveAll(h => h.Key == ApiKeyHeader);
            headers.Add(new(ApiKeyHeader, targets.TenantBKey));
            expect = Expectation.NotFoundForOtherTenant;
            variant += " with tenant B's key";
        }

        if (random.Chance(0.15))
        {
            headers.Add(new("If-None-Match", random.Pick(HostileValues.IfNoneMatches)));
            variant += ", If-None-Match";
        }

        return new FuzzRequest
        {
            Number = number, Family = "id", Variant = $"{method} {Shape(target)}: {variant}", Method = method, Target = target,
            Headers = headers, Expect = expect,
        };
    }

    private FuzzRequest Query(Random random, long number)
    {
        string query;
        switch (random.Next(10))
        {
            case 0:
                query = random.Pick(["", "&&&", "=", "==", "limit", "limit=", "&limit=1&", "?", "%", "%%%", "a=%zz&b=%", "limit=1&limit=2&limit=3",
                    "status=pending&status=failed", "cursor=a&cursor=b", "createdAfter=1&createdAfter=2", new string('q', 9000),
                    string.Join("&", Enumerable.Range(0, 1000).Select(i => $"p{i.ToString(CultureInfo.InvariantCulture)}=1")),
                    string.Join("&", Enumerable.Repeat("limit=1", 500))]);
                break;
            default:
                int count = random.Next(1, 5);
                query = string.Join("&", Enumerable.Range(0, count).Select(_ => $"{random.Pick(QueryNames)}={random.Pick(HostileValues.QueryValues)}"));
                break;
        }

        string path = random.Next(10) switch
        {
            < 8 => "/v1/operations",
            8 => $"/v1/operations/{random.Pick(targets.Operations):D}",
            _ => $"/v1/accounts/{targets.AccountA:D}",
        };
        var headers = Defaults(number);
        string variant = $"GET {Shape(path)}?{FuzzRequest.Escape(Encoding.UTF8.GetBytes(query), 80)}";
        if (random.Chance(0.2))
        {
            // Tenant B's list and filters must never show tenant A's operations.
            headers.RemoveAll(h => h.Key == ApiKeyHeader);
            headers.Add(new(ApiKeyHeader, targets.TenantBKey));
            variant += " with tenant B's key";
        }

        return new FuzzRequest
        {
            Number = number, Family = "query", Variant = variant, Method = "GET", Target = path + "?" + query, Headers = headers,
        };
    }

    private FuzzRequest Method(Random random, long number)
    {
        string method = random.Chance(0.6) ? random.Pick(HostileValues.StandardMethods) : random.Pick(HostileValues.OddMethods);
        string route = random.Pick(Routes);
        string target = Fill(random, route);
        var headers = Defaults(number);
        byte[]? body = null;
        if (random.Chance(0.5) && method != "HEAD" && method != "GET")
        {
            body = Encoding.UTF8.GetBytes("{\"durationMs\":1}");
            headers.Insert(0, new("Content-Type", "application/json"));
        }

        var (host, extra) = Dress(random, headers);
        return new FuzzRequest
        {
            Number = number, Family = "method", Variant = $"{Shape(method)} {route}{extra}", Method = method, Target = target, Headers = headers,
            Body = body, Host = host,
        };
    }

    private FuzzRequest Path(Random random, long number)
    {
        string op = random.Pick(targets.Operations).ToString("D", CultureInfo.InvariantCulture);
        string target = random.Pick(
        [
            "/v1/operations/../admin/consistency", "/v1/./operations", "/v1//operations", "//v1/operations", "///", "/v1/operations/",
            "/v1/operations//", "/v1/operations/%2e%2e/admin/consistency", "/v1/operations%2F" + op, "/v1%2Foperations", "/v1%2foperations%2f" + op,
            $"/v1/operations/{op}/cancel/", $"/v1/operations/{op}//cancel", $"/v1/operations/{op}/%63ancel", $"/v1/operations/{op}/CANCEL",
            $"/v1/operations/{op}/cancel/..", $"/v1/operations/{op}/..", $"/v1/operations/{op}/.", $"/v1/operations/{op}%2F..%2F..%2Fadmin%2Fconsistency",
            "/V1/OPERATIONS", "/v1/Operations", "/v1/diagnostics/sleep/", "/v1/diagnostics/sleep/..", "/v1/diagnostics//sleep",
            "/v1/diagnostics/%73leep", "/v1/diagnostics/sleep;jsessionid=x", "/v1/diagnostics/sleep%00", "/v1/diagnostics/sleep%00.json",
            "/v1/diagnostics/sleep%20", "/v1/diagnostics/sleep.json", "/v1/operations/%00", "/%00", "/..", "/../../../../etc/passwd",
            "/%2e%2e/%2e%2e/etc/passwd", "/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/v1/operations/" + new string('a', 2000),
            "/" + string.Join("/", Enumerable.Repeat("a", 1000)), "/" + string.Join("/", Enumerable.Repeat("..", 1000)),
            "/v1/" + new string('x', 7000), "/v1/" + new string('x', 9000), "/v1/operations/%", "/v1/operations/%zz", "/v1/operations/%C0%AF",
            "/v1/operations/%E2%80%AE", "/v1/operations/%FF", "/v1/accounts/%2e", "/v1/accounts/", "/v1/accounts//", "/swagger/../openapi/v1.json",
            "/swagger/%2e%2e/%2e%2e/etc/passwd", "/swagger/index.html%00", "/openapi/v1.json%00", "/openapi/v2.json", "/openapi/..%2fv1.json",
            "/openapi/../../v1/operations", "/health/live/..%2f..%2fv1/operations", "/health/live/", "/health/LIVE", "/health/ready%00",
            "/v1/operations/{id}", "/v1/operations/:id", "/v1/operations/*", "/v1/operations/%7Bid%7D", "/v1/operations?", "/v1/operations#x",
            "/v1/operations/%5C..%5C", "/v1/operations/\\..\\", "/v1/operations/%u002e", "/v1/diagnostics/sleep?" + new string('x', 7900),
            "/v1/operations/" + string.Concat(Enumerable.Repeat("%2F", 1500)), "/v1/operations/%252e%252e", "/v1/%2e/operations",
        ]);
        string method = random.Next(10) switch { < 6 => "GET", < 9 => "POST", _ => "DELETE" };
        var headers = Defaults(number);
        byte[]? body = null;
        if (method == "POST")
        {
            body = Encoding.UTF8.GetBytes("{\"durationMs\":1}");
            headers.Insert(0, new("Content-Type", "application/json"));
        }

        var (host, extra) = Dress(random, headers);
        return new FuzzRequest
        {
            Number = number, Family = "path", Variant = $"{method} {FuzzRequest.Escape(Encoding.UTF8.GetBytes(target), 80)}{extra}", Method = method,
            Target = target, Headers = headers, Body = body, Host = host,
        };
    }

    /// <summary>
    /// Sometimes an odd Accept, a forged Host or no key on a method or path request: the errors the framework and the
    /// middleware answer themselves (404, 405, 401, a refused host) must be problems whatever the client accepts.
    /// </summary>
    private static (string? Host, string Variant) Dress(Random random, List<KeyValuePair<string, string>> headers)
    {
        var variant = new StringBuilder();
        if (random.Chance(0.25))
        {
            string accept = random.Pick(HostileValues.Accepts);
            headers.Add(new("Accept", accept));
            variant.Append(CultureInfo.InvariantCulture, $", Accept: {accept}");
        }

        if (random.Chance(0.1))
        {
            headers.RemoveAll(h => h.Key == ApiKeyHeader);
            variant.Append(", no key");
        }

        string? host = random.Chance(0.1) ? random.Pick(HostileValues.Hosts) : null;
        if (host is not null)
        {
            variant.Append(", forged Host");
        }

        return (host, variant.ToString());
    }

    /// <summary>What every request starts with: the trace id that names it, and tenant A's key to get past authentication.</summary>
    private List<KeyValuePair<string, string>> Defaults(long number) =>
        [new("traceparent", TraceIds.TraceParent(seed, number)), new(ApiKeyHeader, _keyA)];

    private string Fill(Random random, string route) => route
        .Replace("{op}", random.Pick(targets.Operations).ToString("D", CultureInfo.InvariantCulture), StringComparison.Ordinal)
        .Replace("{account}", targets.AccountA.ToString("D", CultureInfo.InvariantCulture), StringComparison.Ordinal);

    /// <summary>A target or token short enough for a variant name: an id becomes {id}, a long run is cut.</summary>
    private static string Shape(string text)
    {
        string shaped = System.Text.RegularExpressions.Regex.Replace(text, "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "{id}");
        return shaped.Length <= 60 ? shaped : shaped[..60] + "...";
    }
}
