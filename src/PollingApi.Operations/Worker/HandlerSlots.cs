namespace PollingApi.Operations.Worker;

/// <summary>
/// A node's handler slots: how many run a handler, are reserved for a claim in flight, or are promised to a submit
/// whose insert has not committed yet; and whether a submit may take a slot at insert.
/// </summary>
/// <remarks>
/// Work submitted on this node can skip the claim: while a slot is free and the last claim found the queue empty, the
/// submit promises itself a slot (<see cref="TryPromise"/>), inserts its row already running under this node's lease
/// and hands it over (<see cref="KeepPromise"/>). Once a claim comes back full, or another node announces pending
/// work, or every slot is busy, submits queue as pending again until a claim finds the queue empty, so work waiting in
/// the table is never starved by new local work.
/// </remarks>
internal sealed class HandlerSlots(WorkerContext context, OperationWakeSignal wakeSignal)
{
    private readonly Lock _gate = new();
    private int _busy;
    private int _promised;
    private bool _accepting;
    private bool _queueMayHaveWork = true;
    private long _pendingNotes;
    private TaskCompletionSource? _promisesSettled;

    public void StartAccepting()
    {
        lock (_gate)
        {
            _accepting = true;
            _queueMayHaveWork = true;
        }
    }

    /// <summary>
    /// Promises a slot to an operation about to be inserted already claimed by this node. False when the worker is not
    /// running, no slot is free, or work may be waiting in the table: insert it pending then.
    /// </summary>
    public bool TryPromise()
    {
        lock (_gate)
        {
            if (!_accepting || _queueMayHaveWork || _busy >= context.Options.MaxConcurrency)
            {
                return false;
            }

            _busy++;
            _promised++;
            return true;
        }
    }

    /// <summary>
    /// Uses a promised slot whose insert committed: runs <paramref name="start"/> (inside the lock, so a stop cannot take
    /// its snapshot of running handlers between the check and the start), or frees the slot when stopping.
    /// </summary>
    public bool KeepPromise(Action start)
    {
        lock (_gate)
        {
            _promised--;
            if (_accepting)
            {
                start();
                return true;
            }

            _busy--;
            SettlePromisesIfStopped();
            return false;
        }
    }

    /// <summary>Gives back a promised slot whose insert failed.</summary>
    public void BreakPromise()
    {
        lock (_gate)
        {
            _promised--;
            _busy--;
            SettlePromisesIfStopped();
        }
    }

    /// <summary>
    /// Ends the promise of a slot whose insert's commit outcome stayed unknown, but keeps the slot taken: if the row was
    /// stored, it is running under this node's lease until it is handed back (see <see cref="ReturnHeld"/>).
    /// </summary>
    public void BreakPromiseHoldingSlot()
    {
        lock (_gate)
        {
            _promised--;
            SettlePromisesIfStopped();
        }
    }

    /// <summary>
    /// Gives back slots held for writes whose commit outcome stayed unknown (an insert claimed at insert, a claim), once
    /// the rows they may have stored were handed back to pending. Until then the node takes no more work than its slots,
    /// counting those rows.
    /// </summary>
    public void ReturnHeld(int count)
    {
        lock (_gate)
        {
            _busy -= count;
        }
    }

    /// <summary>An operation was stored pending (here or on another node): claim before promising slots to submits again.</summary>
    public void NotePending()
    {
        lock (_gate)
        {
            _queueMayHaveWork = true;
            _pendingNotes++;
        }

        wakeSignal.Wake();
    }

    /// <summary>Reserves every free slot for a claim: how many, and a mark to tell later whether pending work was noted meanwhile.</summary>
    public (int Free, long PendingMark) ReserveForClaim()
    {
        lock (_gate)
        {
            int free = Math.Max(context.Options.MaxConcurrency - _busy, 0);
            _busy += free;
            if (free == 0)
            {
                // Every slot is busy, so nothing can tell whether work waits: claim when one frees.
                _queueMayHaveWork = true;
            }

            return (free, _pendingNotes);
        }
    }

    /// <summary>
    /// A claim of <paramref name="free"/> rows took <paramref name="claimed"/>. Work stored pending after its snapshot
    /// may be waiting (only a later claim can tell), and a claim whose outcome had to be settled says nothing of it.
    /// </summary>
    public void ClaimReturned(int free, int claimed, long pendingMark, bool settled)
    {
        lock (_gate)
        {
            _queueMayHaveWork = settled || claimed == free || _pendingNotes != pendingMark;
        }
    }

    /// <summary>Gives back slots reserved for a claim that took fewer rows.</summary>
    public void ReturnUnclaimed(int count)
    {
        lock (_gate)
        {
            _busy -= count;
        }
    }

    /// <summary>A handler ended. A freed slot is worth a claim only when work may be waiting; an empty queue costs no statement.</summary>
    public void HandlerEnded()
    {
        bool claimNow;
        lock (_gate)
        {
            _busy--;
            claimNow = _queueMayHaveWork;
        }

        if (claimNow)
        {
            wakeSignal.Wake();
        }
    }

    /// <summary>Waits for a wake-up or the poll interval.</summary>
    public async Task WaitForWorkAsync(CancellationToken stoppingToken)
    {
        try
        {
            await wakeSignal.WaitAsync(context.Options.PollInterval, context.Time, stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: the claim loop's condition ends the claiming.
        }
    }

    /// <summary>Promises no more slots, and waits (up to <paramref name="until"/>) for the inserts of those promised.</summary>
    public async Task StopAcceptingAsync(DateTimeOffset until)
    {
        Task settled;
        lock (_gate)
        {
            _accepting = false;
            _promisesSettled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            SettlePromisesIfStopped();
            settled = _promisesSettled.Task;
        }

        try
        {
            await settled.WaitAsync(context.Remaining(until), context.Time).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // An insert still in flight: if it commits, its row is running under this node and is released at the stop.
        }
    }

    private void SettlePromisesIfStopped()
    {
        if (!_accepting && _promised == 0)
        {
            _promisesSettled?.TrySetResult();
        }
    }
}
