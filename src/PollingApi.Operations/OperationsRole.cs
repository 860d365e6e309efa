namespace PollingApi.Operations;

/// <summary>What a node does: serve the HTTP API, run handlers, or both.</summary>
public enum OperationsRole
{
    All,
    Api,
    Worker,
}
