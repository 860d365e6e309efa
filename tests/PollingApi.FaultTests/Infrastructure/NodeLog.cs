using System.Globalization;
using System.Text.RegularExpressions;

namespace PollingApi.FaultTests.Infrastructure;

/// <summary>
/// A node's standard output read back as log entries: the simple console format the harness runs nodes with, each
/// entry a first line with the UTC timestamp (the node's appsettings.json asks for one), the level and the category,
/// and its scopes and message on the indented lines after it.
/// </summary>
internal static partial class NodeLog
{
    /// <summary>Every entry the node logged so far, in order.</summary>
    public static List<NodeLogEntry> Read(NodeProcess node)
    {
        var entries = new List<NodeLogEntry>();
        if (!File.Exists(node.StdoutPath))
        {
            return entries;
        }

        NodeLogEntry? current = null;
        var text = new List<string>();
        foreach (string line in File.ReadLines(node.StdoutPath))
        {
            var head = EntryHead().Match(line);
            if (head.Success)
            {
                if (current is not null)
                {
                    entries.Add(current with { Text = string.Join('\n', text) });
                }

                var at = head.Groups["at"].Success
                    ? DateTime.ParseExact(head.Groups["at"].Value, "yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture,
                        DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal)
                    : (DateTime?)null;
                current = new NodeLogEntry(at, head.Groups["level"].Value, head.Groups["category"].Value, "");
                text.Clear();
            }
            else if (current is not null)
            {
                text.Add(line.Trim());
            }
        }

        if (current is not null)
        {
            entries.Add(current with { Text = string.Join('\n', text) });
        }

        return entries;
    }

    [GeneratedRegex(@"^(?<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)?\s*(?<level>trce|dbug|info|warn|fail|crit): (?<category>[^\[\s]+)")]
    private static partial Regex EntryHead();
}

/// <summary>One log entry: when (the node's own clock; null without a timestamp), its level, category and text.</summary>
internal sealed record NodeLogEntry(DateTime? At, string Level, string Category, string Text)
{
    public bool Says(string fragment) => Text.Contains(fragment, StringComparison.Ordinal);
}
