using System.Globalization;
using System.Text;

namespace PollingApi.FuzzTests.Generation;

/// <summary>What a request's answer must be, beyond the checks every answer gets.</summary>
internal enum Expectation
{
    /// <summary>Only the general checks: no 5xx, every 4xx body a problem.</summary>
    None,

    /// <summary>Another tenant's key on tenant A's operation or account: it must look like an id that does not exist (404).</summary>
    NotFoundForOtherTenant,

    /// <summary>No valid key on a protected route: never a 2xx or 3xx.</summary>
    RefusedWithoutValidKey,
}

/// <summary>How a raw-socket exchange ends after its bytes are written.</summary>
internal enum RawEnding
{
    /// <summary>Read answers until the server closes the connection (every raw request asks it to) or a deadline passes.</summary>
    ReadAnswers,

    /// <summary>Shut down the sending side (FIN), as a client whose body was cut short would, then read answers.</summary>
    HalfCloseThenReadAnswers,

    /// <summary>Close the socket at once and read nothing.</summary>
    Close,

    /// <summary>Reset the connection (RST) and read nothing.</summary>
    Reset,
}

/// <summary>
/// Bytes that <see cref="HttpClient"/> cannot send (broken framing, bare CR, over-long lines): written to a raw socket
/// in <see cref="Pieces"/>, with a short pause between pieces, then ended as <see cref="Ending"/> says.
/// </summary>
internal sealed record RawExchange(IReadOnlyList<byte[]> Pieces, RawEnding Ending);

/// <summary>
/// One generated request: its number in the seed's sequence (which also regenerates it), its family and variant for
/// the report, and what is sent. <see cref="Raw"/> set: the request goes over a raw socket exactly as those bytes, and
/// the other fields only describe it.
/// </summary>
internal sealed record FuzzRequest
{
    private const int BodyPrefixBytes = 300;
    private const int RawPrefixBytes = 600;

    public required long Number { get; init; }

    /// <summary>body, header, id, query, method, path or raw.</summary>
    public required string Family { get; init; }

    /// <summary>What was done to it, e.g. "sleep: truncated, duplicate property".</summary>
    public required string Variant { get; init; }

    public required string Method { get; init; }

    /// <summary>The request target as sent: path and query, not normalised.</summary>
    public required string Target { get; init; }

    /// <summary>Every header as sent, Content-Type included, in order.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; } = [];

    /// <summary>A forged Host header (a well-formed host[:port]); null: the real one.</summary>
    public string? Host { get; init; }

    public byte[]? Body { get; init; }

    public RawExchange? Raw { get; init; }

    public Expectation Expect { get; init; } = Expectation.None;

    /// <summary>Text no answer to this request may contain: another tenant's ids.</summary>
    public IReadOnlyList<string> MustNotReveal { get; init; } = [];

    /// <summary>The request for a report: method and target, the headers, the body's length and first bytes (escaped).</summary>
    public string Describe()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"#{Number} [{Family}: {Variant}]");
        if (Raw is not null)
        {
            int length = Raw.Pieces.Sum(p => p.Length);
            byte[] all = [.. Raw.Pieces.SelectMany(p => p)];
            text.Append(CultureInfo.InvariantCulture, $" raw socket, {length} bytes in {Raw.Pieces.Count} piece(s), then {Raw.Ending}: ");
            text.Append(Escape(all, RawPrefixBytes));
            return text.ToString();
        }

        text.Append(CultureInfo.InvariantCulture, $" {Method} {Escape(Encoding.UTF8.GetBytes(Target), 2000)}");
        if (Host is not null)
        {
            text.Append(CultureInfo.InvariantCulture, $" | Host: {Escape(Encoding.UTF8.GetBytes(Host), 200)}");
        }

        foreach (var (name, value) in Headers)
        {
            text.Append(CultureInfo.InvariantCulture, $" | {name}: {Escape(Encoding.UTF8.GetBytes(value), 300)}");
        }

        if (Body is not null)
        {
            text.Append(CultureInfo.InvariantCulture, $" | body {Body.Length} bytes: {Escape(Body, BodyPrefixBytes)}");
        }

        return text.ToString();
    }

    /// <summary>Printable ASCII as it is, every other byte as \xNN; at most <paramref name="max"/> bytes, then how many more.</summary>
    public static string Escape(ReadOnlySpan<byte> bytes, int max)
    {
        var text = new StringBuilder();
        foreach (byte b in bytes[..Math.Min(bytes.Length, max)])
        {
            if (b is >= 0x20 and < 0x7f and not (byte)'\\')
            {
                text.Append((char)b);
            }
            else
            {
                text.Append(CultureInfo.InvariantCulture, $"\\x{b:x2}");
            }
        }

        if (bytes.Length > max)
        {
            text.Append(CultureInfo.InvariantCulture, $"... ({bytes.Length - max} more bytes)");
        }

        return text.ToString();
    }
}
