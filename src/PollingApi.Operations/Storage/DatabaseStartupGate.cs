namespace PollingApi.Operations.Storage;

/// <summary>
/// Opens once the starting node has reached its database and applied the migrations (see
/// <see cref="DatabaseMigrationService"/>), and stays open. What runs SQL on its own (the worker, the listener, the
/// kinds' settings, the maintenance jobs) waits for it, and requests that need the database are answered
/// <c>503 database-unavailable</c> before it opens: nothing runs against a schema that is not migrated yet.
/// </summary>
internal sealed class DatabaseStartupGate
{
    private readonly TaskCompletionSource _opened = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public bool IsOpen => _opened.Task.IsCompleted;

    /// <summary>Completes when the gate opens; throws <see cref="OperationCanceledException"/> when the token fires first.</summary>
    public Task WaitUntilOpenAsync(CancellationToken cancellationToken) => _opened.Task.WaitAsync(cancellationToken);

    public void Open() => _opened.TrySetResult();
}
