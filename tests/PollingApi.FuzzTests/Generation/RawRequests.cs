using System.Globalization;
using System.Text;

namespace PollingApi.FuzzTests.Generation;

/// <summary>
/// Requests <see cref="HttpClient"/> cannot send, written byte for byte to a socket: broken chunked framing, bodies
/// cut short or reset, bare CR or LF, over-long lines, conflicting lengths, raw control and non-ASCII bytes. Every
/// request asks the server to close the connection after its answer, so an answer is read to the end of the stream.
/// Versions other than HTTP/1.0 and 1.1 are not sent: Kestrel answers them 505, which is HTTP's own answer, not a fault.
/// </summary>
internal static class RawRequests
{
    private const string SleepPath = "/v1/diagnostics/sleep";
    private const string SleepBody = "{\"durationMs\":1}";

    public static FuzzRequest Generate(Random random, long number, int seed, FuzzTargets targets, DateTimeOffset now)
    {
        string op = random.Pick(targets.Operations).ToString("D", CultureInfo.InvariantCulture);
        var common = new List<string> { "Host: 127.0.0.1", $"traceparent: {TraceIds.TraceParent(seed, number)}", $"X-Api-Key: {targets.TenantAKey}" };

        string[] post = [.. common, "Content-Type: application/json"];
        (string variant, RawExchange exchange, string method, string target) = random.Next(22) switch
        {
            0 => InvalidChunk(random, post),
            1 => Truncated(random, post),
            2 => ResetMidBody(random, post),
            3 => BareCr(random, common, op),
            4 => OverLongRequestLine(random, common),
            5 => HeadersTooLarge(random, common),
            6 => ("Content-Length and Transfer-Encoding", Read(Request("POST", SleepPath, [.. post, "Content-Length: 16", "Transfer-Encoding: chunked"],
                Chunked(SleepBody))), "POST", SleepPath),
            7 => ("two Content-Lengths", Read(Request("POST", SleepPath, [.. post, "Content-Length: 16", $"Content-Length: {random.Next(0, 40)}"],
                SleepBody)), "POST", SleepPath),
            8 => BadContentLength(random, post),
            9 => MalformedHeaderLine(random, common),
            10 => ("bare LF line endings", Read(Encoding.ASCII.GetBytes(
                $"GET /v1/operations/{op} HTTP/1.1\n{string.Join('\n', common)}\nConnection: close\n\n")), "GET", "/v1/operations/{id}"),
            11 => ("HTTP/1.0 without Host", Read(Encoding.ASCII.GetBytes(
                $"GET /v1/operations/{op} HTTP/1.0\r\n{string.Join("\r\n", common.Skip(1))}\r\n\r\n")), "GET", "/v1/operations/{id}"),
            12 => RequestTargetForm(random, common, op),
            13 => ControlBytes(random, common, op),
            14 => HostHeaders(random, common, op),
            15 => Pipelined(random, common, op),
            16 => ("Expect: 100-continue, then no body", new RawExchange(
                [Request("POST", SleepPath, [.. post, "Content-Length: 16", "Expect: 100-continue"], "")], RawEnding.HalfCloseThenReadAnswers),
                "POST", SleepPath),
            17 => TransferEncodings(random, post),
            18 => TwoKeys(targets, common, op),
            19 => Garbage(random),
            20 => ChunkedTrailers(random, post),
            _ => MethodTokens(random, common),
        };
        return new FuzzRequest
        {
            Number = number, Family = "raw", Variant = variant, Method = method, Target = target, Raw = exchange,
        };
    }

    private static (string, RawExchange, string, string) InvalidChunk(Random random, string[] headers)
    {
        string chunked = random.Pick(
        [
            "zz\r\n" + SleepBody + "\r\n0\r\n\r\n", "-1\r\n" + SleepBody + "\r\n0\r\n\r\n", "ffffffffffffffffffff\r\n" + SleepBody + "\r\n0\r\n\r\n",
            "7fffffffffffffff\r\n" + SleepBody + "\r\n0\r\n\r\n", "1;ext=\u0001\r\n{\r\n0\r\n\r\n", "10\r\n" + SleepBody + "XX\r\n0\r\n\r\n",
            "0x10\r\n" + SleepBody + "\r\n0\r\n\r\n", " 10\r\n" + SleepBody + "\r\n0\r\n\r\n", "10 \r\n" + SleepBody + "\r\n0\r\n\r\n",
            "\r\n" + SleepBody + "\r\n0\r\n\r\n", new string('1', 100) + "\r\n" + SleepBody + "\r\n0\r\n\r\n", "8\r\n{\"durati\r\n8\r\nonMs\":1}",
            "10\r\n" + SleepBody + "\n0\n\n", "10\r\n" + SleepBody + "\r\n0\r\nX-Trailer\r\n\r\n", "1\r\n{\r\nG\r\n" + SleepBody + "\r\n0\r\n\r\n",
        ]);
        // A body that stops before its last chunk leaves the server waiting for more: end it with FIN.
        bool halfClose = random.Chance(0.3) || !chunked.EndsWith("\r\n\r\n", StringComparison.Ordinal);
        return ($"invalid chunked body {FuzzRequest.Escape(Encoding.ASCII.GetBytes(chunked), 24)}{(halfClose ? ", then FIN" : "")}",
            new RawExchange([Request("POST", SleepPath, [.. headers, "Transfer-Encoding: chunked"], chunked)],
                halfClose ? RawEnding.HalfCloseThenReadAnswers : RawEnding.ReadAnswers), "POST", SleepPath);
    }

    private static (string, RawExchange, string, string) Truncated(Random random, string[] headers)
    {
        int declared = random.Pick([17, 100, 1000, 65_536, 1_000_000]);
        int sent = random.Next(0, SleepBody.Length);
        bool read = random.Chance(0.6);
        return ($"Content-Length {declared.ToString(CultureInfo.InvariantCulture)}, {sent.ToString(CultureInfo.InvariantCulture)} bytes sent, then {(read ? "FIN" : "close")}",
            new RawExchange([Request("POST", SleepPath, [.. headers, $"Content-Length: {declared.ToString(CultureInfo.InvariantCulture)}"], SleepBody[..sent])],
                read ? RawEnding.HalfCloseThenReadAnswers : RawEnding.Close), "POST", SleepPath);
    }

    private static (string, RawExchange, string, string) ResetMidBody(Random random, string[] headers)
    {
        bool chunked = random.Chance(0.3);
        byte[] head = chunked
            ? Request("POST", SleepPath, [.. headers, "Transfer-Encoding: chunked"], "")
            : Request("POST", SleepPath, [.. headers, "Content-Length: 1000"], "");
        byte[] part = Encoding.ASCII.GetBytes(chunked ? "100\r\n{\"durationMs\":" : "{\"durationMs\":" + new string(' ', random.Next(0, 500)));
        return ($"reset mid-body ({(chunked ? "chunked" : "Content-Length 1000")})", new RawExchange([head, part], RawEnding.Reset), "POST", SleepPath);
    }

    private static (string, RawExchange, string, string) BareCr(Random random, List<string> common, string op)
    {
        byte[] bytes = random.Next(4) switch
        {
            0 => Request("GET", $"/v1/operations/{op}", [.. common, "X-Fuzz: a\rb"], ""),
            1 => Request("GET", $"/v1/operations/{op}", [.. common, "X-Fuzz: a\r"], ""),
            2 => Encoding.ASCII.GetBytes($"GET /v1/operations/{op}\r HTTP/1.1\r\n{string.Join("\r\n", common)}\r\nConnection: close\r\n\r\n"),
            _ => Request("GET", $"/v1/operations/{op}", [.. common, "X-Fuzz\r: a"], ""),
        };
        return ("a bare CR", Read(bytes), "GET", "/v1/operations/{id}");
    }

    private static (string, RawExchange, string, string) OverLongRequestLine(Random random, List<string> common)
    {
        int length = random.Pick([8200, 20_000, 70_000]);
        string target = random.Chance(0.5) ? "/v1/operations/" + new string('a', length) : "/v1/operations?limit=1&x=" + new string('a', length);
        return ($"a request line of {length.ToString(CultureInfo.InvariantCulture)}+ bytes", Read(Request("GET", target, common, "")), "GET", "/v1/operations...");
    }

    private static (string, RawExchange, string, string) HeadersTooLarge(Random random, List<string> common)
    {
        bool many = random.Chance(0.5);
        string[] extra = many
            ? [.. Enumerable.Range(0, random.Pick([101, 500, 5000])).Select(i => $"X-Fuzz-{i.ToString(CultureInfo.InvariantCulture)}: v")]
            : [$"X-Fuzz: {new string('v', random.Pick([33_000, 100_000]))}"];
        return (many ? $"{extra.Length.ToString(CultureInfo.InvariantCulture)} headers" : $"a header of {extra[0].Length.ToString(CultureInfo.InvariantCulture)} bytes",
            Read(Request("GET", "/v1/operations", [.. common, .. extra], "")), "GET", "/v1/operations");
    }

    private static (string, RawExchange, string, string) BadContentLength(Random random, string[] headers)
    {
        string value = random.Pick(["-1", "abc", "99999999999999999999", "1, 1", "16, 16", "+16", " 16", "16 ", "0x10", "1.6e1", "", "\u00e9"]);
        return ($"Content-Length: {value}", Read(Request("POST", SleepPath, [.. headers, $"Content-Length: {value}"], SleepBody)), "POST", SleepPath);
    }

    private static (string, RawExchange, string, string) MalformedHeaderLine(Random random, List<string> common)
    {
        string line = random.Pick(["X-Fuzz", "X-Fuzz : v", "X Fuzz: v", ": v", "X-Fuzz:: v", " X-Fuzz: v", "\tfolded continuation", "X-F\u00e9: v",
            "X-Api-Key : garbage", "(X): v", "X-Fuzz:\u0000"]);
        return ($"header line {FuzzRequest.Escape(Encoding.UTF8.GetBytes(line), 30)}", Read(Request("GET", "/v1/operations", [.. common, line], "")),
            "GET", "/v1/operations");
    }

    private static (string, RawExchange, string, string) RequestTargetForm(Random random, List<string> common, string op)
    {
        var (method, target) = random.Pick<(string, string)>(
        [
            ("GET", "http://evil.example/v1/operations"), ("GET", $"http://127.0.0.1/v1/operations/{op}"), ("GET", "https://127.0.0.1:1/v1/operations"),
            ("GET", "ftp://x/v1/operations"), ("OPTIONS", "*"), ("GET", "*"), ("CONNECT", "127.0.0.1:1"), ("CONNECT", "evil.example:443"),
            ("GET", "v1/operations"), ("GET", "?limit=1"), ("GET", "//evil.example/v1/operations"), ("POST", "http://127.0.0.1" + SleepPath),
        ]);
        return ($"request target {method} {target}", Read(Request(method, target, common, "")), method, target);
    }

    private static (string, RawExchange, string, string) ControlBytes(Random random, List<string> common, string op)
    {
        byte[] control = random.Pick<byte[]>([[0x00], [0x01], [0x7f], [0xff], [0xc3, 0xa9], [0x1b, 0x5b, 0x32, 0x4a], [0x08]]);
        byte[] head = Encoding.ASCII.GetBytes("GET /v1/operations/");
        byte[] bytes = random.Next(3) switch
        {
            0 => [.. head, .. control, .. Encoding.ASCII.GetBytes($" HTTP/1.1\r\n{string.Join("\r\n", common)}\r\nConnection: close\r\n\r\n")],
            1 => [.. head, .. Encoding.ASCII.GetBytes(op + "?wait="), .. control,
                .. Encoding.ASCII.GetBytes($" HTTP/1.1\r\n{string.Join("\r\n", common)}\r\nConnection: close\r\n\r\n")],
            _ => [.. Encoding.ASCII.GetBytes($"GET /v1/operations/{op} HTTP/1.1\r\n{string.Join("\r\n", common)}\r\nX-Fuzz: a"), .. control,
                .. Encoding.ASCII.GetBytes("b\r\nConnection: close\r\n\r\n")],
        };
        return ($"raw byte(s) {FuzzRequest.Escape(control, 8)} in the request", Read(bytes), "GET", "/v1/operations/...");
    }

    private static (string, RawExchange, string, string) HostHeaders(Random random, List<string> common, string op)
    {
        string[] others = [.. common.Skip(1)];
        string[] hosts = random.Pick<string[]>(
        [
            [], ["Host: 127.0.0.1", "Host: evil.example"], ["Host: a b"], ["Host: evil/../x"], ["Host: 127.0.0.1:99999"], ["Host: [::1"],
            ["Host: user@evil.example"], ["Host:"], ["Host: 127.0.0.1\u0000"], ["Host: " + new string('h', 5000)], ["Host: \u00e9vil"],
        ]);
        return (hosts.Length == 0 ? "no Host" : $"Host {FuzzRequest.Escape(Encoding.UTF8.GetBytes(string.Join(" | ", hosts)), 40)}",
            Read(Request("GET", $"/v1/operations/{op}", [.. hosts, .. others], "")), "GET", "/v1/operations/{id}");
    }

    private static (string, RawExchange, string, string) Pipelined(Random random, List<string> common, string op)
    {
        byte[] first = Encoding.ASCII.GetBytes($"GET /v1/operations/{op} HTTP/1.1\r\n{string.Join("\r\n", common)}\r\n\r\n");
        byte[] second = random.Next(3) switch
        {
            0 => Encoding.ASCII.GetBytes("GARBAGE\r\n\r\n"),
            1 => Request("POST", SleepPath, [.. common, "Content-Type: application/json", "Content-Length: 5"], SleepBody),
            _ => [.. Encoding.ASCII.GetBytes("\r\n\r\n"), .. Request("GET", "/v1/operations?limit=1", common, "")],
        };
        return ("pipelined after a valid request", Read([.. first, .. second]), "GET", "/v1/operations/{id}");
    }

    private static (string, RawExchange, string, string) TransferEncodings(Random random, string[] headers)
    {
        string value = random.Pick(["chunked, identity", "xchunked", "chunked\u0000", "gzip, chunked", "identity", "chunked, chunked", " chunked",
            "CHUNKED", "chunked;q=1", "\u00e9"]);
        return ($"Transfer-Encoding: {FuzzRequest.Escape(Encoding.UTF8.GetBytes(value), 20)}",
            Read(Request("POST", SleepPath, [.. headers, $"Transfer-Encoding: {value}"], Chunked(SleepBody))), "POST", SleepPath);
    }

    private static (string, RawExchange, string, string) TwoKeys(FuzzTargets targets, List<string> common, string op)
    {
        return ("a second X-Api-Key line (tenant B's)", Read(Request("GET", $"/v1/operations/{op}", [.. common, $"X-Api-Key: {targets.TenantBKey}"], "")),
            "GET", "/v1/operations/{id}");
    }

    private static (string, RawExchange, string, string) Garbage(Random random)
    {
        var bytes = new byte[random.Pick([1, 16, 1000, 20_000])];
        random.NextBytes(bytes);
        return ($"{bytes.Length.ToString(CultureInfo.InvariantCulture)} random bytes", new RawExchange([bytes], RawEnding.HalfCloseThenReadAnswers), "?", "?");
    }

    private static (string, RawExchange, string, string) ChunkedTrailers(Random random, string[] headers)
    {
        string trailer = random.Pick(["X-Api-Key: garbage", "Content-Length: 5", "Transfer-Encoding: chunked", "X-Fuzz: " + new string('t', 40_000),
            "Host: evil.example", "no colon"]);
        return ($"chunked body with trailer {FuzzRequest.Escape(Encoding.UTF8.GetBytes(trailer), 30)}",
            Read(Request("POST", SleepPath, [.. headers, "Transfer-Encoding: chunked"], $"10\r\n{SleepBody}\r\n0\r\n{trailer}\r\n\r\n")),
            "POST", SleepPath);
    }

    private static (string, RawExchange, string, string) MethodTokens(Random random, List<string> common)
    {
        string line = random.Pick(["G\u0000T /v1/operations HTTP/1.1", "GET\t/v1/operations HTTP/1.1", "GET  /v1/operations HTTP/1.1",
            "GET /v1/operations  HTTP/1.1", " GET /v1/operations HTTP/1.1", "GET /v1/operations HTTP/1.1 x", "G\u00c9T /v1/operations HTTP/1.1",
            "GET /v1/op erations HTTP/1.1", "\r\n\r\nGET /v1/operations HTTP/1.1", "/v1/operations HTTP/1.1", "GET HTTP/1.1"]);
        return ($"request line {FuzzRequest.Escape(Encoding.UTF8.GetBytes(line), 40)}",
            Read([.. Encoding.UTF8.GetBytes(line), .. Encoding.ASCII.GetBytes($"\r\n{string.Join("\r\n", common)}\r\nConnection: close\r\n\r\n")]),
            "?", "/v1/operations");
    }

    private static RawExchange Read(byte[] bytes) => new([bytes], RawEnding.ReadAnswers);

    /// <summary>A request with CRLF line endings and <c>Connection: close</c>; header lines are written as given (UTF-8).</summary>
    private static byte[] Request(string method, string target, IEnumerable<string> headers, string body) =>
        Encoding.UTF8.GetBytes($"{method} {target} HTTP/1.1\r\n{string.Join("", headers.Select(h => h + "\r\n"))}Connection: close\r\n\r\n{body}");

    private static string Chunked(string body) =>
        $"{Encoding.UTF8.GetByteCount(body).ToString("x", CultureInfo.InvariantCulture)}\r\n{body}\r\n0\r\n\r\n";
}
