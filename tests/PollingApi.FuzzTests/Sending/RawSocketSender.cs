using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using PollingApi.FuzzTests.Generation;

namespace PollingApi.FuzzTests.Sending;

/// <summary>
/// Writes a raw request to a new connection, piece by piece, ends it as the request says (read, FIN then read, close,
/// reset) and parses whatever HTTP/1.1 answers came back before the server closed the connection.
/// </summary>
internal sealed class RawSocketSender(IPEndPoint endpoint, TimeSpan readTimeout)
{
    private static readonly TimeSpan PauseBetweenPieces = TimeSpan.FromMilliseconds(20);
    private const int MaxResponseBytes = 4 * 1024 * 1024;

    public async Task<FuzzOutcome> SendAsync(FuzzRequest request, CancellationToken cancellationToken)
    {
        var exchange = request.Raw ?? throw new ArgumentException("Not a raw-socket request.", nameof(request));
        var watch = Stopwatch.StartNew();
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(readTimeout);
        string? sendFailure = null;
        try
        {
            await socket.ConnectAsync(endpoint, deadline.Token);
            for (int i = 0; i < exchange.Pieces.Count; i++)
            {
                if (i > 0)
                {
                    await Task.Delay(PauseBetweenPieces, deadline.Token);
                }

                await socket.SendAsync(exchange.Pieces[i], SocketFlags.None, deadline.Token);
            }
        }
        catch (SocketException ex)
        {
            // The server may answer and close before it has read everything (a 431 for a huge header): read the answer anyway.
            sendFailure = ex.SocketErrorCode.ToString();
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new FuzzOutcome(OutcomeKind.TimedOut, [], "could not write the request in time", watch.Elapsed);
        }

        switch (exchange.Ending)
        {
            case RawEnding.Close:
                socket.Close();
                return new FuzzOutcome(OutcomeKind.NotAwaited, [], "closed by the suite", watch.Elapsed);
            case RawEnding.Reset:
                socket.LingerState = new LingerOption(true, 0);
                socket.Close();
                return new FuzzOutcome(OutcomeKind.NotAwaited, [], "reset by the suite", watch.Elapsed);
            case RawEnding.HalfCloseThenReadAnswers when sendFailure is null:
                try
                {
                    socket.Shutdown(SocketShutdown.Send);
                }
                catch (SocketException ex)
                {
                    sendFailure = ex.SocketErrorCode.ToString();
                }

                break;
        }

        var (received, ending) = await ReceiveAsync(socket, deadline.Token, cancellationToken);
        var answers = ParseAnswers(received);
        if (answers.Count > 0)
        {
            return new FuzzOutcome(OutcomeKind.Answered, answers, ending, watch.Elapsed);
        }

        return ending == "timeout"
            ? new FuzzOutcome(OutcomeKind.TimedOut, [], $"no answer within {readTimeout.TotalSeconds:0} s", watch.Elapsed)
            : new FuzzOutcome(OutcomeKind.ClosedWithoutAnswer, [],
                received.Length == 0 ? ending : $"{ending} after {received.Length} unparsable bytes", watch.Elapsed);
    }

    /// <summary>Everything the server sent until it closed the connection: "closed", "reset", or "timeout".</summary>
    private static async Task<(byte[] Received, string Ending)> ReceiveAsync(Socket socket, CancellationToken deadline, CancellationToken interrupt)
    {
        using var received = new MemoryStream();
        var buffer = new byte[16 * 1024];
        try
        {
            while (received.Length < MaxResponseBytes)
            {
                int read = await socket.ReceiveAsync(buffer, SocketFlags.None, deadline);
                if (read == 0)
                {
                    return (received.ToArray(), "closed");
                }

                received.Write(buffer, 0, read);
            }

            return (received.ToArray(), "answer too long");
        }
        catch (SocketException ex)
        {
            return (received.ToArray(), ex.SocketErrorCode == SocketError.ConnectionReset ? "reset" : ex.SocketErrorCode.ToString());
        }
        catch (OperationCanceledException) when (!interrupt.IsCancellationRequested)
        {
            return (received.ToArray(), "timeout");
        }
    }

    /// <summary>
    /// The HTTP/1.x answers in <paramref name="bytes"/>, in order: each a status line, headers, and a body framed by
    /// Content-Length, by chunks, or by the end of the stream. Interim (1xx) answers are skipped; a cut-off last answer
    /// keeps the part of its body that arrived.
    /// </summary>
    internal static List<FuzzAnswer> ParseAnswers(ReadOnlySpan<byte> bytes)
    {
        var answers = new List<FuzzAnswer>();
        int position = 0;
        while (position < bytes.Length)
        {
            int headEnd = bytes[position..].IndexOf("\r\n\r\n"u8);
            if (headEnd < 0)
            {
                break;
            }

            string head = Encoding.Latin1.GetString(bytes.Slice(position, headEnd));
            position += headEnd + 4;
            string[] lines = head.Split("\r\n");
            string[] statusLine = lines[0].Split(' ', 3);
            if (statusLine.Length < 2 || !statusLine[0].StartsWith("HTTP/1.", StringComparison.Ordinal)
                || !int.TryParse(statusLine[1], NumberStyles.None, CultureInfo.InvariantCulture, out int status))
            {
                break;
            }

            var headers = lines.Skip(1).Select(l => l.Split(':', 2)).Where(p => p.Length == 2)
                .Select(p => (Name: p[0].Trim(), Value: p[1].Trim())).ToList();
            string? Header(string name) => headers.FirstOrDefault(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase)).Value;

            if (status is >= 100 and < 200)
            {
                continue;
            }

            byte[] body;
            if (status is 204 or 304)
            {
                body = [];
            }
            else if (Header("Transfer-Encoding") is { } encoding && encoding.Contains("chunked", StringComparison.OrdinalIgnoreCase))
            {
                (body, position) = Dechunk(bytes, position);
            }
            else if (Header("Content-Length") is { } lengthText && int.TryParse(lengthText, NumberStyles.None, CultureInfo.InvariantCulture, out int length))
            {
                int available = Math.Min(length, bytes.Length - position);
                body = bytes.Slice(position, available).ToArray();
                position += available;
            }
            else
            {
                body = bytes[position..].ToArray();
                position = bytes.Length;
            }

            string? mediaType = Header("Content-Type")?.Split(';', 2)[0].Trim();
            answers.Add(new FuzzAnswer(status, mediaType, body));
        }

        return answers;
    }

    private static (byte[] Body, int Position) Dechunk(ReadOnlySpan<byte> bytes, int position)
    {
        using var body = new MemoryStream();
        while (position < bytes.Length)
        {
            int lineEnd = bytes[position..].IndexOf("\r\n"u8);
            if (lineEnd < 0)
            {
                break;
            }

            string sizeText = Encoding.Latin1.GetString(bytes.Slice(position, lineEnd)).Split(';', 2)[0].Trim();
            position += lineEnd + 2;
            if (!int.TryParse(sizeText, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int size) || size < 0)
            {
                break;
            }

            if (size == 0)
            {
                // Trailers, if any, end with an empty line.
                int trailersEnd = bytes[position..].IndexOf("\r\n"u8);
                while (trailersEnd > 0)
                {
                    position += trailersEnd + 2;
                    trailersEnd = bytes[position..].IndexOf("\r\n"u8);
                }

                return (body.ToArray(), trailersEnd == 0 ? position + 2 : bytes.Length);
            }

            int available = Math.Min(size, bytes.Length - position);
            body.Write(bytes.Slice(position, available));
            position += available + 2;
        }

        return (body.ToArray(), Math.Min(position, bytes.Length));
    }
}
