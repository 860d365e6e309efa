using System.Runtime.InteropServices;

namespace PollingApi.Harness;

/// <summary>
/// Turns the first SIGINT, SIGTERM or SIGQUIT into a cancellation, so that the harness can stop what it started
/// and clean up. A second signal is not intercepted, so it ends the harness at once.
/// </summary>
public sealed class SignalCancellation : IDisposable
{
    private readonly CancellationTokenSource _interrupt = new();
    private readonly string _stopping;
    private readonly PosixSignalRegistration[] _registrations;

    /// <param name="stopping">What the harness does when cancelled, for the message on standard error, e.g. "stopping the API and the cluster".</param>
    public SignalCancellation(string stopping)
    {
        _stopping = stopping;
        _registrations =
        [
            PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal),
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal),
            PosixSignalRegistration.Create(PosixSignal.SIGQUIT, OnSignal),
        ];
    }

    /// <summary>Cancelled by the first signal.</summary>
    public CancellationToken Token => _interrupt.Token;

    /// <summary>Whether a signal has arrived.</summary>
    public bool IsCancellationRequested => _interrupt.IsCancellationRequested;

    public void Dispose()
    {
        foreach (var registration in _registrations)
        {
            registration.Dispose();
        }

        _interrupt.Dispose();
    }

    private void OnSignal(PosixSignalContext signal)
    {
        if (_interrupt.IsCancellationRequested)
        {
            return;
        }

        signal.Cancel = true;
        Console.Error.WriteLine($"{signal.Signal}: {_stopping} (send it again to quit at once)");
        _interrupt.Cancel();
    }
}
