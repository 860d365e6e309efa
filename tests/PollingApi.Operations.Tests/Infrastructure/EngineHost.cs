using System.Collections.Concurrent;
using Dapper;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using PollingApi.Operations.Handlers;
using PollingApi.Operations.Storage;
using PollingApi.Operations.Model;
using PollingApi.Operations.Worker;
using PollingApi.Operations.Lifecycle;

namespace PollingApi.Operations.Tests.Infrastructure;

/// <summary>
/// The engine's services for one node, built without a web host: a store, a pump, the lease-rescue job,
/// and test commands whose executions are recorded in <see cref="Executions"/>.
/// </summary>
internal sealed class EngineHost : IAsyncDisposable
{
    private readonly ServiceProvider _services;

    private EngineHost(ServiceProvider services, string connectionString)
    {
        _services = services;
        ConnectionString = connectionString;
    }

    public string ConnectionString { get; }

    public OperationStore Store => _services.GetRequiredService<OperationStore>();

    public AttemptStore Attempts => _services.GetRequiredService<AttemptStore>();

    public HandlerSlots Slots => _services.GetRequiredService<HandlerSlots>();

    public OperationWorker Worker => _services.GetRequiredService<OperationWorker>();

    public OperationBatchWriter BatchWriter => _services.GetRequiredService<OperationBatchWriter>();

    public OperationWaiters Waiters => _services.GetRequiredService<OperationWaiters>();

    public LeaseKeeper Leases => _services.GetRequiredService<LeaseKeeper>();

    public LeaseRescueJob LeaseRescue => ActivatorUtilities.CreateInstance<LeaseRescueJob>(_services);

    public OperationWakeSignal WakeSignal => _services.GetRequiredService<OperationWakeSignal>();

    public KindSettingsCache KindSettings => _services.GetRequiredService<KindSettingsCache>();

    public OperationKinds Kinds => _services.GetRequiredService<OperationKinds>();

    public ExecutionLog Executions => _services.GetRequiredService<ExecutionLog>();

    public string NodeId => _services.GetRequiredService<NodeIdentity>().Id;

    public static async Task<EngineHost> StartAsync(string connectionString, string nodeId,
        IDictionary<string, string?>? settings = null, TimeProvider? timeProvider = null, ExecutionLog? executions = null,
        Random? random = null)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Operations:NodeId"] = nodeId,
                ["Operations:PollInterval"] = "00:00:00.100",
                ["Operations:RetryBaseDelay"] = "00:00:01",
                ["Operations:RetryMaxDelay"] = "00:00:08",
            })
            .AddInMemoryCollection(settings ?? new Dictionary<string, string?>())
            .Build();

        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<IConfiguration>(configuration);
        if (timeProvider is not null)
        {
            services.AddSingleton(timeProvider);
        }

        services.AddSingleton(executions ?? new ExecutionLog());
        services.AddOperations(configuration, connectionString)
            .AddCommand<TestRequest, TestResult, TestHandler>(TestHandler.Kind, "/v1/test/run")
            .AddTransactionalCommand<TestRequest, TestResult, TransactionalTestHandler>(TransactionalTestHandler.Kind, "/v1/test/tx");
        if (random is not null)
        {
            services.AddSingleton(sp => new RetryBackoff(
                sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<OperationsOptions>>(), random));
        }

        var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = false, ValidateScopes = true });
        await provider.GetRequiredService<DatabaseMigrator>().MigrateAsync(CancellationToken.None);
        // No hosted service runs here: take the first measurement of the database's clock as a node's start-up does, or the
        // worker would wait for it forever (a test that brought its own clock has nothing to measure).
        var clock = provider.GetRequiredService<DatabaseClock>();
        if (!clock.IsSynchronised)
        {
            clock.Set(await ActivatorUtilities.CreateInstance<DatabaseClockSync>(provider).MeasureAsync(CancellationToken.None));
        }

        return new EngineHost(provider, connectionString);
    }

    /// <summary>Stores a test operation due at <paramref name="now"/>.</summary>
    public async Task<OperationRow> SubmitAsync(TestRequest request, DateTime now, int maxAttempts = 5, string kind = TestHandler.Kind) =>
        await Store.InsertAsync(new NewOperation(Guid.CreateVersion7(), "default", kind,
            System.Text.Json.JsonSerializer.Serialize(request, OperationJson.Options), maxAttempts, null), now, CancellationToken.None)
        ?? throw new InvalidOperationException("The insert stored nothing.");

    public async Task<OperationRow> ReadAsync(Guid id) =>
        await Store.FindAsync(id, "default", CancellationToken.None) ?? throw new InvalidOperationException($"No row {id}.");

    public async Task<T> ScalarAsync<T>(string sql, object? parameters = null)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        return await connection.ExecuteScalarAsync<T>(sql, parameters) ?? throw new InvalidOperationException("No value.");
    }

    public async ValueTask DisposeAsync() => await _services.DisposeAsync();
}

/// <param name="FailTimes">Attempts up to this one fail with a transient error.</param>
/// <param name="FailPermanently">Every attempt fails permanently.</param>
/// <param name="Block">The handler waits for <see cref="ExecutionLog.Gate"/> or its token.</param>
/// <param name="SleepMs">How long the handler runs, stopping early when its token fires.</param>
/// <param name="HangAttempts">Attempts up to this one wait for <see cref="ExecutionLog.Gate"/> ignoring their token.</param>
internal sealed record TestRequest(int FailTimes = 0, bool FailPermanently = false, bool Block = false, int SleepMs = 0, int HangAttempts = 0);

internal sealed record TestResult(Guid OperationId, int Attempt, string Node);

/// <summary>Every handler execution, by operation, across all the nodes of a test.</summary>
internal sealed class ExecutionLog
{
    private readonly ConcurrentDictionary<Guid, int> _counts = new();

    /// <summary>Completed by a test to let blocking handlers finish.</summary>
    public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ConcurrentBag<Guid> Started { get; } = [];

    public IReadOnlyDictionary<Guid, int> Counts => _counts;

    public int Record(Guid id) => _counts.AddOrUpdate(id, 1, (_, n) => n + 1);

    private int _running;
    private int _mostRunning;

    /// <summary>The most handlers that ran at the same time, across every node of the test.</summary>
    public int MostRunning => Volatile.Read(ref _mostRunning);

    /// <summary>Handlers running now, across every node of the test.</summary>
    public int Running => Volatile.Read(ref _running);

    public void Entered()
    {
        int now = Interlocked.Increment(ref _running);
        int most;
        while (now > (most = Volatile.Read(ref _mostRunning)) && Interlocked.CompareExchange(ref _mostRunning, now, most) != most)
        {
        }
    }

    public void Left() => Interlocked.Decrement(ref _running);
}

internal sealed class TestHandler(ExecutionLog log, NodeIdentity node) : IOperationHandler<TestRequest, TestResult>
{
    public const string Kind = "test.run";

    public async Task<TestResult> HandleAsync(TestRequest request, OperationContext context, CancellationToken cancellationToken)
    {
        log.Started.Add(context.OperationId);
        log.Entered();
        try
        {
            if (request.Block)
            {
                await log.Gate.Task.WaitAsync(cancellationToken);
            }

            if (context.Attempt <= request.HangAttempts)
            {
                await log.Gate.Task;
            }

            if (request.SleepMs > 0)
            {
                await Task.Delay(request.SleepMs, cancellationToken);
            }
        }
        finally
        {
            log.Left();
        }

        log.Record(context.OperationId);
        if (request.FailPermanently)
        {
            throw new PermanentOperationFailureException("urn:test:permanent", "Told to fail.", "The test asked for it.");
        }

        if (context.Attempt <= request.FailTimes)
        {
            throw new InvalidOperationException("Transient test failure with internal details that must not leak.");
        }

        return new TestResult(context.OperationId, context.Attempt, node.Id);
    }
}

/// <summary>Writes a row into <c>test_effects</c> in the engine's transaction, then behaves like <see cref="TestHandler"/>.</summary>
internal sealed class TransactionalTestHandler(ExecutionLog log, NodeIdentity node) : ITransactionalOperationHandler<TestRequest, TestResult>
{
    public const string Kind = "test.tx";

    public async Task<TestResult> HandleAsync(TestRequest request, TransactionalOperationContext context, CancellationToken cancellationToken)
    {
        var transaction = context.Transaction;
        await transaction.Connection!.ExecuteAsync(new CommandDefinition(
            "INSERT INTO test_effects (operation_id, attempt) VALUES (@id, @attempt)",
            new { id = context.OperationId, attempt = context.Attempt }, transaction, cancellationToken: cancellationToken));
        return await new TestHandler(log, node).HandleAsync(request, context, cancellationToken);
    }
}

/// <summary>A <see cref="Random"/> that always draws the same fraction, so backoff is predictable.</summary>
internal sealed class FixedRandom(double value) : Random
{
    protected override double Sample() => value;

    public override double NextDouble() => value;
}

internal static class FakeTime
{
    public static FakeTimeProvider Create() => new(new DateTimeOffset(2026, 11, 27, 10, 0, 0, TimeSpan.Zero)) { AutoAdvanceAmount = TimeSpan.Zero };
}
