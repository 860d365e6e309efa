using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Worker;

/// <summary>
/// What the worker tells the rest of the node (and through it, the other nodes) when it changes an operation. The
/// lifecycle's signal fan-out implements it; the worker knows nothing of who listens.
/// </summary>
internal interface IOperationSignals
{
    /// <summary>An operation reached a terminal status; <paramref name="row"/> is its stored state when at hand.</summary>
    void Finished(Guid id, OperationRow? row = null);

    /// <summary>Work became due (stored pending, or returned to pending).</summary>
    void Pending();

    /// <summary>An operation changed without finishing: claimed, progress reported, or back to pending for a retry.</summary>
    void Changed(Guid id);
}
