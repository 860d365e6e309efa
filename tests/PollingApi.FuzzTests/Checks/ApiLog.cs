using System.Text;
using System.Text.RegularExpressions;

namespace PollingApi.FuzzTests.Checks;

/// <summary>One entry of the API's console log: its level (<c>fail</c>, <c>warn</c>, ...) and its text, all lines of it.</summary>
internal sealed partial record LogEntry(string Level, string Text)
{
    public bool IsError => Level is "fail" or "crit";

    /// <summary>The W3C trace id of the request the entry was logged for, from the log scope; null outside a request.</summary>
    public string? TraceId => TraceIdInScope().Match(Text) is { Success: true } match ? match.Groups[1].Value : null;

    /// <summary>Kestrel's id of the connection the entry was logged for, from the log scope.</summary>
    public string? ConnectionId => ConnectionIdInScope().Match(Text) is { Success: true } match ? match.Groups[1].Value : null;

    [GeneratedRegex("TraceId:([0-9a-f]{32})", RegexOptions.CultureInvariant)]
    private static partial Regex TraceIdInScope();

    [GeneratedRegex("ConnectionId:([0-9A-Za-z]+)", RegexOptions.CultureInvariant)]
    private static partial Regex ConnectionIdInScope();
}

/// <summary>
/// Reads the API's standard output and error files (where <see cref="PollingApi.Harness.LoopbackApiProcess"/> copies
/// them) from a mark on, as console-log entries. A line that belongs to no entry (an unhandled exception written by the
/// runtime, say) is an entry of its own with the level <c>text</c>, or <c>crit</c> when it reports an unhandled exception.
/// </summary>
internal sealed partial class ApiLog(string stdoutPath, string stderrPath)
{
    public readonly record struct Mark(long Stdout, long Stderr);

    public Mark Now() => new(Length(stdoutPath), Length(stderrPath));

    public IReadOnlyList<LogEntry> EntriesSince(Mark mark) => [.. Read(stdoutPath, mark.Stdout), .. Read(stderrPath, mark.Stderr)];

    /// <summary>
    /// The trace id of the request <paramref name="entry"/> was logged for: its own, or for an entry Kestrel logged with
    /// only a connection id, the trace id another entry of the same connection has.
    /// </summary>
    public static string? TraceIdOf(LogEntry entry, IEnumerable<LogEntry> all) =>
        entry.TraceId ?? (entry.ConnectionId is { } connection
            ? all.FirstOrDefault(e => e.TraceId is not null && e.ConnectionId == connection)?.TraceId
            : null);

    private static long Length(string path) => File.Exists(path) ? new FileInfo(path).Length : 0;

    private static List<LogEntry> Read(string path, long from)
    {
        var entries = new List<LogEntry>();
        if (!File.Exists(path))
        {
            return entries;
        }

        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        file.Seek(Math.Min(from, file.Length), SeekOrigin.Begin);
        using var reader = new StreamReader(file, Encoding.UTF8);
        string? level = null;
        var text = new StringBuilder();
        void Flush()
        {
            if (level is not null)
            {
                entries.Add(new LogEntry(level, text.ToString().TrimEnd()));
            }

            level = null;
            text.Clear();
        }

        while (reader.ReadLine() is { } line)
        {
            var start = EntryStart().Match(line);
            if (start.Success)
            {
                Flush();
                level = start.Groups[1].Value;
                text.AppendLine(line);
            }
            else if (level is not null && (line.StartsWith(' ') || line.StartsWith('\t')))
            {
                text.AppendLine(line);
            }
            else if (line.Length > 0)
            {
                Flush();
                level = line.Contains("Unhandled exception", StringComparison.OrdinalIgnoreCase) ? "crit" : "text";
                text.AppendLine(line);
            }
        }

        Flush();
        return entries;
    }

    [GeneratedRegex("^(trce|dbug|info|warn|fail|crit): ", RegexOptions.CultureInvariant)]
    private static partial Regex EntryStart();
}
