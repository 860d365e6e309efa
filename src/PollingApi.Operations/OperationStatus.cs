namespace PollingApi.Operations;

/// <summary>The states of an operation, spelled as they appear in the API and in the database.</summary>
public static class OperationStatus
{
    public const string Pending = "pending";
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";

    public static bool IsTerminal(string status) => status is Succeeded or Failed or Cancelled;
}
