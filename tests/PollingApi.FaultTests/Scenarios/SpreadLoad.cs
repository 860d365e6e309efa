using System.Collections.Concurrent;
using System.Diagnostics;
using PollingApi.FaultTests.Infrastructure;

namespace PollingApi.FaultTests.Scenarios;

/// <summary>
/// Clients that spread the crash scenario's command mix over every node of a scenario, as a load balancer in front of
/// them would, and retry each submit on the next node when a node does not answer or answers 503. Most submits carry
/// an Idempotency-Key, so a retry is always safe; every fourth carries none and goes through group commit (and, on an
/// idle node, is claimed at insert), so it is retried only when it surely stored nothing.
/// </summary>
internal sealed class SpreadLoad(ScenarioContext context, Func<IReadOnlyList<NodeProcess>> nodes, Stopwatch clock, string keyPrefix)
{
    /// <summary>Every this many submits, one is sent without an Idempotency-Key.</summary>
    public const int KeylessEvery = 4;

    /// <summary>How long a client keeps retrying one submit: longer than a database outage and a node's restart.</summary>
    public static readonly TimeSpan SubmitDeadline = TimeSpan.FromSeconds(90);

    private static readonly TimeSpan RetryPause = TimeSpan.FromMilliseconds(200);

    private readonly ConcurrentBag<SubmitRecord> _records = [];

    /// <summary>Called on the client's own task as soon as a node answered a submit 202, before anything else is sent.</summary>
    public Action<NodeProcess, ApiAnswer>? Accepted { get; init; }

    public IReadOnlyCollection<SubmitRecord> Records => _records;

    /// <summary>Submits <paramref name="operations"/> commands, paced over <paramref name="duration"/>, from <c>--clients</c> concurrent clients.</summary>
    public async Task RunAsync(int operations, TimeSpan duration, IReadOnlyList<OpenedAccount> accounts, CancellationToken cancellationToken)
    {
        var settings = context.Settings;
        var pacing = TimeSpan.FromTicks(duration.Ticks / operations);
        var start = Stopwatch.StartNew();
        int next = -1;
        await Task.WhenAll(Enumerable.Range(0, settings.Clients).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < operations)
            {
                var due = pacing * i - start.Elapsed;
                if (due > TimeSpan.Zero)
                {
                    await Task.Delay(due, cancellationToken);
                }

                await SubmitAsync(i, accounts, cancellationToken);
            }
        }, cancellationToken)));
    }

    /// <summary>
    /// Sends the submits numbered <paramref name="first"/> to <paramref name="first"/> + <paramref name="count"/> - 1 all at
    /// once, each from a client of its own: a burst that is still being written when a fault strikes.
    /// </summary>
    public Task BurstAsync(int first, int count, IReadOnlyList<OpenedAccount> accounts, CancellationToken cancellationToken) =>
        Task.WhenAll(Enumerable.Range(first, count).Select(i => Task.Run(() => SubmitAsync(i, accounts, cancellationToken), cancellationToken)));

    /// <summary>Submit number <paramref name="index"/> of the mix: the same command and key for the same seed and number.</summary>
    private Task SubmitAsync(int index, IReadOnlyList<OpenedAccount> accounts, CancellationToken cancellationToken)
    {
        var command = CommandMix.Next(context.Settings.Seed, index, accounts);
        string? key = index % KeylessEvery == KeylessEvery - 1 ? null : $"{keyPrefix}-{index}";
        var record = new SubmitRecord(index, command, key);
        _records.Add(record);
        return SubmitAsync(record, cancellationToken);
    }

    /// <summary>
    /// Sends one submit until it is accepted, refused for good, or (without a key) may have been stored without an answer
    /// saying so. The first try goes to node <c>index mod nodes</c>, each retry to the next one.
    /// </summary>
    private async Task SubmitAsync(SubmitRecord record, CancellationToken cancellationToken)
    {
        var command = record.Command;
        bool keyed = record.IdempotencyKey is not null;
        var deadline = clock.Elapsed + SubmitDeadline;
        for (int attempt = 0; ; attempt++)
        {
            var current = nodes();
            var node = current[(record.Index + attempt) % current.Count];
            var answer = await context.Client(node, clock).PostAsync(command.Route, command.Json, record.IdempotencyKey, cancellationToken);
            record.Tries++;
            record.Final = answer;
            // A 200 is a replay of an operation already done, or a submit whose commit the node had to settle and that found
            // its operation already run to its end by then (it answers the operation's current state).
            if (answer.Status is 202 or 200 && answer.OperationId is { } id)
            {
                record.Accept(id, answer, node.NodeId);
                Accepted?.Invoke(node, answer);
                return;
            }

            if (answer.Status == 503 && answer.ProblemType == ProblemTypes.CommitOutcomeUnknown && answer.ProblemOperationId is { } unknown)
            {
                record.OutcomeUnknown.Add(unknown);
                if (!keyed)
                {
                    // Submitting it again could store it twice: its Location tells later whether it was stored.
                    return;
                }
            }
            else if (answer.Status == 503)
            {
                record.Unavailable++;
            }
            else if (answer.IsTransportError && IsNotSent(answer))
            {
                record.NotConnected++;
                if ((attempt + 1) % current.Count != 0)
                {
                    // Not listening (dead, or still starting): the next node at once, as a load balancer would.
                    continue;
                }
            }
            else if (answer.IsTransportError)
            {
                record.Unanswered++;
                if (!keyed)
                {
                    // Sent, and no answer: it may be stored, and without a key a retry could store it twice.
                    return;
                }
            }
            else
            {
                // A 4xx: final. The transfer to an account that does not exist may be refused at submit.
                record.RejectedAsExpected = command is TransferCommand { ToUnknownAccount: true } && answer.Status is >= 400 and < 500;
                return;
            }

            if (clock.Elapsed > deadline)
            {
                return;
            }

            await Task.Delay(RetryPause, cancellationToken);
        }
    }

    /// <summary>
    /// The connection could not be made (the node is dead or not listening yet): the request never left the client. The
    /// handler resends a request by itself only when its pooled connection had failed before the request went out, never
    /// a POST whose body was sent (dotnet/runtime#86714), so a connection error is never a resent request that the first
    /// connection had delivered.
    /// </summary>
    private static bool IsNotSent(ApiAnswer answer) =>
        answer.TransportError?.StartsWith(nameof(System.Net.Http.HttpRequestError.ConnectionError) + ":", StringComparison.Ordinal) == true;
}

/// <summary>One submit of a <see cref="SpreadLoad"/>, with everything its client saw while trying.</summary>
internal sealed class SubmitRecord(int index, Command command, string? idempotencyKey)
{
    public int Index { get; } = index;

    public Command Command { get; } = command;

    /// <summary>Null: sent without one.</summary>
    public string? IdempotencyKey { get; } = idempotencyKey;

    /// <summary>The operation a 202 (or a replayed 200) named.</summary>
    public Guid? AcceptedId { get; private set; }

    /// <summary>The accepting answer: its status shows <c>running</c> when the node claimed the operation at insert.</summary>
    public ApiAnswer? AcceptedAnswer { get; private set; }

    public string? AcceptedBy { get; private set; }

    public int Tries { get; set; }

    /// <summary>Plain 503s (<c>database-unavailable</c>: nothing was stored).</summary>
    public int Unavailable { get; set; }

    /// <summary>Tries whose connection could not be made: nothing was sent.</summary>
    public int NotConnected { get; set; }

    /// <summary>Tries sent and never answered (the node died, or the connection broke): each may have stored the operation.</summary>
    public int Unanswered { get; set; }

    /// <summary>Operations named by a <c>503 commit-outcome-unknown</c>.</summary>
    public List<Guid> OutcomeUnknown { get; } = [];

    public bool RejectedAsExpected { get; set; }

    public ApiAnswer? Final { get; set; }

    /// <summary>A first 202 that showed the operation <c>running</c>: the node stored it claimed by itself and started it at once.</summary>
    public bool ClaimedAtInsert => AcceptedAnswer is { Status: 202, Replayed: false, OperationStatus: "running" };

    public void Accept(Guid id, ApiAnswer answer, string nodeId)
    {
        AcceptedId = id;
        AcceptedAnswer = answer;
        AcceptedBy = nodeId;
    }
}
