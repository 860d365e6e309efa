using System.Globalization;
using System.Text;

namespace PollingApi.FuzzTests.Generation;

/// <summary>A command route and how to make a valid body for it, the starting point of every body mutation.</summary>
internal sealed record CommandRoute(string Name, string Path, Func<Random, FuzzTargets, List<JsonProperty>> ValidBody)
{
    public static readonly CommandRoute Sleep = new("sleep", "/v1/diagnostics/sleep", static (random, _) =>
    [
        // Short sleeps only: the normal flow after the fuzz must find a free worker slot.
        new("durationMs", random.Next(0, 20).ToString(CultureInfo.InvariantCulture)),
        .. random.Chance(0.3) ? [new JsonProperty("failTimes", random.Next(0, 2).ToString(CultureInfo.InvariantCulture))] : Array.Empty<JsonProperty>(),
        .. random.Chance(0.2) ? [new JsonProperty("failPermanently", random.Chance(0.5) ? "true" : "false")] : Array.Empty<JsonProperty>(),
    ]);

    public static readonly CommandRoute OpenAccount = new("accounts", "/v1/accounts", static (random, _) =>
    [
        new("currency", "\"EUR\""),
        new("openingBalance", random.Next(0, 10_000).ToString(CultureInfo.InvariantCulture)),
    ]);

    public static readonly CommandRoute Transfer = new("transfers", "/v1/transfers", static (random, targets) =>
    [
        new("from", Quote(targets.AccountA)),
        new("to", Quote(random.Chance(0.8) ? targets.AccountB : targets.AccountA)),
        new("amount", random.Next(1, 100).ToString(CultureInfo.InvariantCulture)),
        new("currency", "\"EUR\""),
    ]);

    public static readonly IReadOnlyList<CommandRoute> All = [Sleep, OpenAccount, Transfer];

    private static string Quote(Guid id) => "\"" + id.ToString("D", CultureInfo.InvariantCulture) + "\"";
}

/// <summary>One property of a JSON object as written: its name (unescaped as written) and its value as raw JSON text.</summary>
internal sealed record JsonProperty(string Name, string RawValue);

/// <summary>
/// Turns a valid command body into a hostile one: first structural changes to its properties (duplicates, other cases,
/// wrong types, huge numbers, deep nesting, long or control-character strings), then changes to its bytes (truncation,
/// invalid UTF-8, NUL, padding past 64 KiB, a non-object). Each change names itself for the report.
/// </summary>
internal static class JsonBodyMutator
{
    private static readonly string[] WrongTypeValues =
        ["\"5\"", "\"\"", "true", "false", "null", "[]", "{}", "[1]", "{\"a\":1}", "1.5", "\"EUR\"", "\"true\"", "[null]", "\"0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50\""];

    private static readonly string[] ExtremeNumbers =
    [
        "1e400", "-1e400", "1E+308", "1.7976931348623157e308", "5e-324", "-0", "-0.0", "0.0", "1.0", "4.000", "1e2", "0.1e1",
        "99999999999999999999999999999999", "-99999999999999999999999999999999", "9223372036854775807", "9223372036854775808",
        "-9223372036854775808", "-9223372036854775809", "2147483647", "2147483648", "-2147483648", "-2147483649", "4294967296",
        "600001", "1000000000001", "-1", "00", "01", "+1", ".5", "5.", "0x10", "1_000", "NaN", "Infinity", "-Infinity",
        "1" + new string('0', 5000), "0." + new string('0', 5000) + "1",
    ];

    private static readonly string[] ControlStrings =
    [
        "\"\\u0000\"", "\"EUR\\u0000\"", "\"E\\u0001R\"", "\"\\u001f\\u007f\"", "\"\\ud800\"", "\"\\udc00\\ud800\"", "\"\\uFFFF\"",
        "\"\\u202eRUE\"", "\"EU\\r\\n\"", "\"\\\\x00\"", "\"eur\"", "\"EURO\"", "\"\u00c9UR\"", "\"\\u0045UR\"", "\"E\u0000R\"",
        "\"E\tR\"", "\"\\x45UR\"", "\"\\u00\"", "\"\\\"", "\"\\uD83D\\uDE00\"",
    ];

    private static readonly string[] NonObjects =
    [
        "", " ", "\n", "{", "}", "[", "[]", "{}", "{}{}", "[{}]", "null", "true", "0", "\"{}\"", "\"\"", "{\"\":1}", "{\"a\"}", "{,}",
        "{\"durationMs\":}", "{\"durationMs\" 1}", "{'durationMs':1}", "{durationMs:1}", "\uFEFF{}", "/* */{}", "{}//", "\0",
    ];

    private static readonly byte[][] InvalidUtf8 =
    [
        [0xFF], [0xFE, 0xFF], [0xC3, 0x28], [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],
        [0xF4, 0x90, 0x80, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80], [0xE2, 0x82], [0x80], [0xC2], [0xEF, 0xBF, 0xBE],
    ];

    private const int LimitBytes = 64 * 1024;

    /// <summary>A hostile body for <paramref name="route"/>: its bytes and what was done to it.</summary>
    public static (byte[] Body, string Variant) Mutate(Random random, CommandRoute route, FuzzTargets targets)
    {
        var properties = route.ValidBody(random, targets);
        var changes = new List<string>();
        int structural = random.Next(100) switch { < 55 => 1, < 85 => 2, _ => 3 };
        bool byteLevel = random.Chance(0.45);
        if (byteLevel && random.Chance(0.5))
        {
            structural = 0;
        }

        for (int i = 0; i < structural; i++)
        {
            changes.Add(ChangeProperties(random, properties));
        }

        byte[] body = Encoding.UTF8.GetBytes(Write(random, properties));
        if (byteLevel || changes.Count == 0)
        {
            (body, string change) = ChangeBytes(random, body);
            changes.Add(change);
        }

        return (body, $"{route.Name}: {string.Join(", ", changes)}");
    }

    private static string ChangeProperties(Random random, List<JsonProperty> properties)
    {
        if (properties.Count == 0)
        {
            properties.Add(new JsonProperty("durationMs", "1"));
        }

        int at = random.Next(properties.Count);
        var target = properties[at];
        switch (random.Next(12))
        {
            case 0:
                properties.Insert(random.Next(properties.Count + 1),
                    target with { RawValue = random.Chance(0.5) ? target.RawValue : random.Pick(WrongTypeValues) });
                return $"duplicate {target.Name}";
            case 1:
                string recased = random.Next(4) switch
                {
                    0 => target.Name.ToUpperInvariant(),
                    1 => target.Name.ToLowerInvariant(),
                    2 when target.Name.Length > 0 => char.ToUpperInvariant(target.Name[0]) + target.Name[1..],
                    _ => string.Concat(target.Name.Select((c, i) => i % 2 == 0 ? char.ToUpperInvariant(c) : c)),
                };
                properties[at] = target with { Name = recased };
                return $"{target.Name} as {recased}";
            case 2:
                properties[at] = target with { RawValue = random.Pick(WrongTypeValues) };
                return $"wrong type for {target.Name}";
            case 3:
                properties[at] = target with { RawValue = random.Pick(ExtremeNumbers) };
                return $"extreme number for {target.Name}";
            case 4:
                int depth = random.Pick([64, 65, 200, 1000, 10_000, 30_000]);
                bool arrays = random.Chance(0.5);
                string nested = arrays
                    ? new string('[', depth) + "1" + new string(']', depth)
                    : string.Concat(Enumerable.Repeat("{\"a\":", depth)) + "1" + new string('}', depth);
                properties[at] = target with { RawValue = nested };
                return $"{target.Name} nested {depth.ToString(CultureInfo.InvariantCulture)} deep";
            case 5:
                int length = random.Pick([256, 4096, 40_000, 65_000, 70_000]);
                char fill = random.Pick(['a', '\u00e9', '\u65e5', ' ']);
                properties[at] = target with { RawValue = "\"" + new string(fill, length) + "\"" };
                return $"{target.Name} a {length.ToString(CultureInfo.InvariantCulture)}-character string";
            case 6:
                properties[at] = target with { RawValue = random.Pick(ControlStrings) };
                return $"control or odd characters in {target.Name}";
            case 7:
                var (name, value) = random.Pick<(string, string)>(
                [
                    ("extra", "1"), ("__proto__", "{}"), ("$type", "\"System.IO.FileInfo, System.IO\""), ("constructor", "{\"prototype\":{}}"),
                    ("", "1"), ("\u0000", "1"), ("durationMs\u0000", "1"), ("\\u0064urationMs", "1"), ("duration_ms", "1"), ("id", "\"x\""),
                    ("tenant", "\"fuzz-b\""), ("status", "\"succeeded\""), (new string('n', 5000), "1"),
                ]);
                properties.Insert(random.Next(properties.Count + 1), new JsonProperty(name, value));
                return $"unknown property {FuzzRequest.Escape(Encoding.UTF8.GetBytes(name), 20)}";
            case 8:
                properties.RemoveAt(at);
                return $"without {target.Name}";
            case 9:
                properties[at] = target with { RawValue = "null" };
                return $"{target.Name} null";
            case 10:
                // The same name written with JSON escapes: a reader that compares raw bytes sees a different name.
                string escaped = string.Concat(target.Name.Select(c => "\\u" + ((int)c).ToString("x4", CultureInfo.InvariantCulture)));
                properties[at] = target with { Name = escaped };
                return $"{target.Name} written with escapes";
            default:
                int count = random.Pick([100, 1000, 5000]);
                for (int i = 0; i < count; i++)
                {
                    properties.Add(new JsonProperty("p" + i.ToString(CultureInfo.InvariantCulture), "0"));
                }

                return $"{count.ToString(CultureInfo.InvariantCulture)} extra properties";
        }
    }

    private static (byte[] Body, string Change) ChangeBytes(Random random, byte[] body)
    {
        switch (random.Next(10))
        {
            case 0:
                int cut = body.Length == 0 ? 0 : random.Next(body.Length);
                return (body[..cut], $"truncated to {cut.ToString(CultureInfo.InvariantCulture)} bytes");
            case 1:
                byte[] invalid = random.Pick(InvalidUtf8);
                // Inside a string value when there is one, else anywhere.
                int quote = Array.IndexOf(body, (byte)'"', Math.Min(body.Length, random.Next(Math.Max(body.Length, 1))));
                int at = quote >= 0 ? quote + 1 : random.Next(body.Length + 1);
                return ([.. body[..at], .. invalid, .. body[at..]], $"invalid UTF-8 {FuzzRequest.Escape(invalid, 8)} at byte {at.ToString(CultureInfo.InvariantCulture)}");
            case 2:
                byte control = random.Pick<byte>([0x00, 0x01, 0x08, 0x0b, 0x0c, 0x1b, 0x1f, 0x7f]);
                int position = random.Next(body.Length + 1);
                return ([.. body[..position], control, .. body[position..]], $"byte \\x{control:x2} at {position.ToString(CultureInfo.InvariantCulture)}");
            case 3:
                int pad = LimitBytes + random.Pick([-1, 0, 1, 2, 1000, 200_000]) - body.Length;
                byte filler = random.Pick<byte>([(byte)' ', (byte)'\n', (byte)'\t']);
                byte[] padded = [.. Enumerable.Repeat(filler, Math.Max(pad, 0)), .. body];
                return (padded, $"padded with whitespace to {padded.Length.ToString(CultureInfo.InvariantCulture)} bytes");
            case 4:
                int size = random.Pick([LimitBytes - 1, LimitBytes, LimitBytes + 1, 100_000, 1_000_000]);
                var junk = new byte[size];
                random.NextBytes(junk);
                return (junk, $"{size.ToString(CultureInfo.InvariantCulture)} random bytes");
            case 5:
                string replacement = random.Pick(NonObjects);
                return (Encoding.UTF8.GetBytes(replacement), $"replaced by {FuzzRequest.Escape(Encoding.UTF8.GetBytes(replacement), 30)}");
            case 6:
                string trailer = random.Pick(["}", ",", "garbage", " // comment", "/* */", "\0", "{}", "]", "\n\n\n"]);
                return ([.. body, .. Encoding.UTF8.GetBytes(trailer)], $"followed by {FuzzRequest.Escape(Encoding.UTF8.GetBytes(trailer), 20)}");
            case 7:
                return random.Chance(0.5)
                    ? ([0xEF, 0xBB, 0xBF, .. body], "UTF-8 byte order mark")
                    : ([0xFF, 0xFE, .. Encoding.Unicode.GetBytes(Encoding.UTF8.GetString(body))], "UTF-16 with byte order mark");
            case 8:
                byte[] flipped = [.. body];
                int flips = random.Next(1, 4);
                for (int i = 0; i < flips && flipped.Length > 0; i++)
                {
                    flipped[random.Next(flipped.Length)] ^= (byte)(1 << random.Next(8));
                }

                return (flipped, $"{flips.ToString(CultureInfo.InvariantCulture)} bit(s) flipped");
            default:
                string text = Encoding.UTF8.GetString(body);
                string broken = random.Next(3) switch
                {
                    0 => text.Replace("}", ",}", StringComparison.Ordinal),
                    1 => text.Replace('"', '\''),
                    _ => text.Replace(":", ":[", StringComparison.Ordinal),
                };
                return (Encoding.UTF8.GetBytes(broken), "broken syntax");
        }
    }

    private static string Write(Random random, List<JsonProperty> properties)
    {
        string separator = random.Chance(0.2) ? ",\n  " : ",";
        return "{" + string.Join(separator, properties.Select(p => $"\"{p.Name}\":{p.RawValue}")) + "}";
    }
}
