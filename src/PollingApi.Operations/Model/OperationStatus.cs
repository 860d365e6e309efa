namespace PollingApi.Operations.Model;

/// <summary>The states of an operation, spelled as they appear in the API and in the database.</summary>
internal static class OperationStatus
{
    public const string Pending = "pending";
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";

    /// <summary>Every status, in the order an operation goes through them.</summary>
    public static readonly IReadOnlyList<string> All = [Pending, Running, Succeeded, Failed, Cancelled];

    public static bool IsTerminal(string status) => status is Succeeded or Failed or Cancelled;
}
