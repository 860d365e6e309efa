using System.Globalization;

namespace PollingApi.FuzzTests.Generation;

/// <summary>
/// The values a careless or hostile client sends where the API expects something well-formed: for header values,
/// query values and ids. Text here is sent UTF-8 encoded; control characters other than CR and LF are sent as they are
/// (CR and LF are the raw-socket cases' job: <see cref="HttpClient"/> refuses them).
/// </summary>
internal static class HostileValues
{
    /// <summary>Text that breaks parsers, validators, SQL, logs and templates.</summary>
    public static readonly IReadOnlyList<string> Text =
    [
        "", " ", "\t", "\0", "a\0b", "\u0001\u0002\u001f", "\u007f", "\u0085", "\u2028\u2029", "\uFEFF", "\u00e9", "\u65e5\u672c",
        "\U0001F600", "\u202Eevil", "%00", "%zz", "%", "%%", "%2", "%u0041", "%c0%af", "../../../../etc/passwd", "..\\..\\windows",
        "' OR 1=1 --", "'; DROP TABLE operations; --", "\"", "\\", "$(reboot)", "`id`", "<script>alert(1)</script>", "{{7*7}}",
        "${jndi:ldap://127.0.0.1/x}", "null", "undefined", "NaN", "Infinity", "-Infinity", "true", "[]", "{}",
        "-1", "0", "-0", "1e999", "1.5", "0x10", "1_000", " 1", "1 ", "+1", "\u0661\u0662", "99999999999999999999999999999",
        "9223372036854775808", "-9223372036854775809", "2147483648", "4294967296",
        new('a', 256), new('a', 4000), new('\u00e9', 2000), string.Concat(Enumerable.Repeat("%00", 300)),
    ];

    /// <summary>Operation ids that are not the plain lower-case "D" form of a stored operation.</summary>
    public static readonly IReadOnlyList<string> MalformedIds =
    [
        "", " ", "x", "1", "-1", "null", "undefined", ".", "..", "...", "%2e%2e", "%2E", "%00", "%20", "%zz", "%",
        "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "ffffffff-ffff-7fff-bfff-ffffffffffff", "00000000-0000-7000-8000-000000000000", "ffffffff-ffff-7fff-ffff-ffffffffffff",
        "7fffffff-ffff-7fff-bfff-ffffffffffff", "80000000-0000-7000-8000-000000000000", "0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f5",
        "0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f500", "0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f5g", "0193a5e27c4b7d2e9f005b1c2d3e4f50",
        "{0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50}", "(0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50)", "0193A5E2-7C4B-7D2E-9F00-5B1C2D3E4F50",
        "{0x0193a5e2,0x7c4b,0x7d2e,{0x9f,0x00,0x5b,0x1c,0x2d,0x3e,0x4f,0x50}}", " 0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50",
        "0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50%20", "0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50%00", "0193a5e2%2D7c4b%2D7d2e%2D9f00%2D5b1c2d3e4f50",
        "%30%31%39%33a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50", "0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50;x", "0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50.json",
        "0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f500193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50", "\u0660193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50",
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "6fa459ea-ee8a-3ca4-894e-db77e160355e", "886313e1-3b8a-5372-9b90-0c9aee199e5d",
        "1ec9414c-232a-6b00-b3c8-9e6bdeced846", "017f22e2-79b0-8cc3-98c4-dc0c0c07398f", "017f22e2-79b0-9cc3-98c4-dc0c0c07398f",
        "017f22e2-79b0-fcc3-98c4-dc0c0c07398f", "017f22e2-79b0-7cc3-18c4-dc0c0c07398f", "017f22e2-79b0-7cc3-e8c4-dc0c0c07398f",
        "01a2-1cf9-7256-78ed-975c-ca42cc563e32", "--------------------------------------", new('0', 300), new('f', 5000),
        "%E2%80%AE0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50", "0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50%2F..%2F..", "%u0030",
    ];

    /// <summary>Query values for the list's filters, pre-encoded: some percent-encoding here is invalid on purpose.</summary>
    public static readonly IReadOnlyList<string> QueryValues =
    [
        "", "%00", "a%00b", "%01", "%1F", "%7F", "%0D%0A", "%zz", "%", "%2", "%%", "%C0%AF", "%FF%FE", "%ED%A0%80", "%F4%90%80%80",
        "%E2%80%AE", "+", "%20", "%2B1", "-1", "0", "1", "2", "100", "101", "2147483648", "99999999999999999999999999", "1e3", "1.5",
        "0x10", "NaN", "null", "true", "[]", "%5B%5D", "a,b", "pending", "PENDING", "pending%00", "succeeded", "failed", "cancelled",
        "running", "diagnostics.sleep", "accounts.open", "transfers.create", "x%00y", "%27%20OR%201%3D1%20--", "%2Fetc%2Fpasswd",
        new('a', 199), new('a', 200), new('a', 201), new('a', 3000), string.Concat(Enumerable.Repeat("%C3%A9", 300)),
        "2026-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00%2B14:00", "9999-12-31T23:59:59.9999999Z",
        "9999-12-31T23:59:59.9999999-14:00", "10000-01-01T00:00:00Z", "-0001-01-01", "2026-13-45T25:61:61Z", "2026-02-30",
        "2026-01-01T00:00:00%2B25:00", "now", "today", "1700000000", "%E2%80%8E2026-01-01", "2026-01-01T00:00:00.12345678901234567890Z",
        "AAAAAAAAAAAAAAAAAAAAAA", "_____________________w", "----------------------", "AAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAAA",
        "AZOl4nxLfS6fAFscLT5PUA", "%2B%2F%2B%2F%2B%2F%2B%2F%2B%2F%2B%2F%2B%2F%2B%2F%2B%2F%2B%2F%2B%2F", "AAAAAAAAAAAAAAAAAAAA%3D%3D",
        "__________________%00_w", "AZOl4nxLfS6fAFscLT5PU%00",
    ];

    public static readonly IReadOnlyList<string> ContentTypes =
    [
        "application/json", "application/json; charset=utf-8", "application/json; charset=UTF-8", "application/json;charset=utf-8",
        "APPLICATION/JSON", "Application/Json; Charset=\"utf-8\"", "application/json; charset=latin1", "application/json; charset=utf-16",
        "application/json; charset=utf-32", "application/json; charset=ebcdic", "application/json; charset=\"\"", "application/json; charset",
        "application/json;", "application/json; =", "application/json; charset=utf-8; charset=utf-16", "application/json, text/plain",
        "application/json\u0000", "application/json\u0001x", "application/jsonx", "application/json+x", "application/problem+json",
        "application/merge-patch+json", "application/vnd.api+json", "application/x-json", "text/json", "text/plain", "text/html",
        "application/xml", "application/x-www-form-urlencoded", "multipart/form-data", "multipart/form-data; boundary=x",
        "multipart/form-data; boundary=", "application/octet-stream", "*/*", "application/*", "", " ", "json", "application/", "/json",
        ";;;", "application/json; boundary=\"", "\u00e9/json", "application/json; charset=\u00e9", new('a', 5000),
        "application/json; " + string.Join("; ", Enumerable.Range(0, 200).Select(i => $"p{i.ToString(CultureInfo.InvariantCulture)}=v")),
    ];

    public static readonly IReadOnlyList<string> IdempotencyKeys =
    [
        "", " ", "\t", "a b", "\u0000", "key\u0000", "\u007f", "\u00e9", "\U0001F600", "k\u0001y", "%00", new('k', 255), new('k', 256),
        new('k', 10_000), new('\u00e9', 200), "a, b", "\"quoted\"", "key;param", "../../x",
    ];

    public static readonly IReadOnlyList<string> Prefers =
    [
        "wait=abc", "wait=-1", "wait=0", "wait=1", "wait=2", "wait=99999999999999999999", "wait=2147483647", "wait=2147483648",
        "wait=1.5", "wait=1e3", "wait=0x10", "wait=\"1\"", "wait=\"", "wait", "wait=", "=1", "wait==1", "respond-async",
        "respond-async, wait=1", "respond-async, wait=1, wait=2", "respond-async;wait=1", "wait=1;x=y", "wait = 1", "WAIT=1",
        "handling=strict", "handling=lenient", "return=minimal", "return=representation", ",,,", ";;;", "\u00e9=1", "wait=\u0661",
        "wait=1\u0000", new('w', 5000), string.Join(", ", Enumerable.Repeat("wait=1", 500)),
    ];

    public static readonly IReadOnlyList<string> IfNoneMatches =
    [
        "*", "\"\"", "\"", "garbage", "W/\"x\"", "W/", "\"abc\", \"def\"", "\"abc\",", ",", "W/\"\", *", "\u0000", "\"\u00e9\"",
        new('"', 1000), "\"" + new string('a', 8000) + "\"", string.Join(", ", Enumerable.Repeat("\"x\"", 1000)),
    ];

    public static readonly IReadOnlyList<string> TraceParents =
    [
        "", "garbage", "00", "00-", "00-xyz-abc-01", "00-00000000000000000000000000000000-0000000000000000-00",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\u0000",
        "00-\u00e9bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", new('0', 5000),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01, 00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b7-01",
    ];

    public static readonly IReadOnlyList<string> ApiKeys =
    [
        "", " ", "garbage", "null", "Bearer x", "\u0000", "\u00e9", new('k', 300), new('k', 20_000), "' OR 1=1 --", "%00", "a, b",
        "pk_0000000000000000000000000000000000000000", "..", "\t",
    ];

    public static readonly IReadOnlyList<string> Authorizations =
    [
        "Bearer garbage", "Bearer ", "Bearer", "bearer x", "Basic Zm9vOmJhcg==", "Basic !!!", "Negotiate x", "Digest x", "", "x",
        "Bearer " + new string('a', 20_000), "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "Bearer \u00e9", "Bearer a\u0000b",
    ];

    /// <summary>Forged Host values that <see cref="HttpClient"/> accepts; garbage Hosts are raw-socket cases.</summary>
    public static readonly IReadOnlyList<string> Hosts =
    [
        "evil.example", "evil.example:443", "127.0.0.1:1", "localhost", "localhost:0", "[::1]", "[::1]:80", "0", "a", "x.",
        "evil.example.", "\u00e9vil.example", "xn--vil-9la.example", new string('h', 63) + ".example", "127.0.0.1:65535",
    ];

    /// <summary>Headers the API does not use, sent with odd values: they must not hurt either.</summary>
    public static readonly IReadOnlyList<KeyValuePair<string, string>> OtherHeaders =
    [
        new("X-Forwarded-For", "garbage, ::1, 999.999.999.999"), new("X-Forwarded-Host", "evil.example"), new("X-Forwarded-Proto", "gopher"),
        new("X-Forwarded-Prefix", "/../../x"), new("X-Forwarded-Prefix", "%00"), new("Forwarded", "for=\"[::1\";proto=x"),
        new("Accept", "application/xml"), new("Accept", "*/*;q=abc"), new("Accept", "text/event-stream"), new("Accept", new string('a', 4000)),
        new("Accept-Encoding", "gzip;q=2, br, *;q=-1"), new("Accept-Charset", "utf-7"), new("Accept-Language", "xx-\u00e9"),
        new("Content-Encoding", "gzip"), new("Content-Encoding", "br, gzip, deflate"), new("Content-Encoding", "garbage"),
        new("Content-Language", "\u0000"), new("Content-MD5", "x"), new("Expect", "100-continue"), new("Expect", "garbage"),
        new("Range", "bytes=0-0,-1"), new("Range", "bytes=garbage"), new("If-Match", "*"), new("If-Modified-Since", "yesterday"),
        new("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:00 GMT"), new("Cookie", "a=b; " + new string('c', 3000)),
        new("Cookie", "=;=;=;;"), new("Origin", "null"), new("Origin", "http://evil.example"), new("Access-Control-Request-Method", "DELETE"),
        new("X-HTTP-Method-Override", "DELETE"), new("X-Method-Override", "PUT"), new("X-Requested-With", "XMLHttpRequest"),
        new("Max-Forwards", "-1"), new("Via", "1.1 evil"), new("User-Agent", "\u0000\u00e9"), new("Referer", "javascript:alert(1)"),
        new("tracestate", "x=" + new string('y', 600)), new("tracestate", ",,,=,"), new("baggage", "a=b,c=%zz,=,;;;"),
        new("baggage", string.Join(",", Enumerable.Range(0, 200).Select(i => $"k{i.ToString(CultureInfo.InvariantCulture)}=v"))),
        new("Request-Id", "|garbage."), new("Correlation-Context", "a=b"), new("Upgrade", "websocket"), new("Upgrade", "h2c"),
        new("HTTP2-Settings", "AAMAAABkAAQAAP__"), new("Connection", "Upgrade, HTTP2-Settings"), new("Connection", "garbage"),
        new("Keep-Alive", "timeout=-1"), new("TE", "trailers, deflate"), new("Priority", "u=9"), new("X-Api-Key-Id", "x"),
        new("Operation-Priority", "9999999999"), new("Operation-Priority", "-1"), new("Operation-Priority", "high\u0000"),
        new("Operation-Scheduled-At", "9999-12-31T23:59:59Z"), new("Operation-Scheduled-At", "0001-01-01T00:00:00Z"),
        new("Operation-Scheduled-At", "garbage"), new("Idempotent-Replayed", "true"), new("Retry-After", "-1"),
    ];

    /// <summary>What the client says it takes: errors the framework writes itself must still be problems, or nothing.</summary>
    public static readonly IReadOnlyList<string> Accepts =
    [
        "application/xml", "text/html", "text/plain", "text/html, */*;q=0.1", "application/problem+xml", "image/png", "application/json;q=0",
        "application/json", "application/problem+json", "*/*", "", "garbage", "application/*", "text/*;q=abc",
    ];

    public static readonly IReadOnlyList<string> OddMethods =
    [
        "FOO", "get", "Post", "M-SEARCH", "PROPFIND", "MKCOL", "COPY", "MOVE", "LOCK", "QUERY", "SEARCH", "LINK", "PURGE", "X",
        "GET2", "_", "!#$%&'*+-.^_`|~", new('G', 100), new('P', 5000),
    ];

    public static readonly IReadOnlyList<string> StandardMethods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"];
}
