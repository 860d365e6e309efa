using System.Text.Json;
using FluentValidation;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Npgsql;
using PollingApi.Operations.Handlers;
using PollingApi.Operations.Consistency;
using PollingApi.Operations.Http;
using PollingApi.Operations.Http.OpenApi;
using PollingApi.Operations.Lifecycle;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using PollingApi.Operations.Model;
using PollingApi.Operations.Security;
using PollingApi.Operations.Telemetry;
using PollingApi.Operations.Worker;
using PollingApi.Operations.Storage;
using Quartz;

namespace PollingApi.Operations;

public static class OperationsServiceCollectionExtensions
{
    /// <summary>
    /// Adds the operations engine: storage on PostgreSQL (migrated at start-up), the Quartz-hosted worker
    /// and maintenance jobs, and the services behind <see cref="OperationsApi.MapOperations"/>.
    /// Register commands on the returned builder.
    /// </summary>
    /// <param name="services">The application's services.</param>
    /// <param name="configuration">The configuration holding the <c>Operations</c> section.</param>
    /// <param name="connectionString">The PostgreSQL database that holds the operations.</param>
    public static OperationsBuilder AddOperations(this IServiceCollection services, IConfiguration configuration, string connectionString)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);

        services.AddOptions<OperationsOptions>().BindConfiguration(OperationsOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<OperationsOptions>, OperationsOptionsValidator>();

        // The job schedule is fixed at registration, so the settings are read (and checked) now.
        var settings = configuration.GetSection(OperationsOptions.SectionName).Get<OperationsOptions>() ?? new OperationsOptions();
        var validation = new OperationsOptionsValidator().Validate(null, settings);
        if (validation.Failed)
        {
            throw new OptionsValidationException(OperationsOptions.SectionName, typeof(OperationsOptions), validation.Failures);
        }

        var node = new NodeIdentity(settings.NodeId ?? $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..8]}");
        services.AddSingleton(node);
        // The engine keeps the database's time (see DatabaseClock), unless the host brought a clock of its own (tests move
        // time with a fake one).
        var clock = services.LastOrDefault(d => d.ServiceType == typeof(TimeProvider));
        if (clock is null || ReferenceEquals(clock.ImplementationInstance, TimeProvider.System))
        {
            services.RemoveAll<TimeProvider>();
            services.AddSingleton(new DatabaseClock());
            services.AddSingleton<TimeProvider>(sp => sp.GetRequiredService<DatabaseClock>());
            services.AddHostedService<DatabaseClockSync>();
        }
        else
        {
            services.AddSingleton(DatabaseClock.Unused());
        }

        void ConfigureDataSource(NpgsqlDataSourceBuilder dataSource)
        {
            DatabaseTimeouts.ApplyDefaults(dataSource.ConnectionStringBuilder);

            // The same few statements run all the time: let Npgsql prepare them (unless the connection string says otherwise).
            if (dataSource.ConnectionStringBuilder.MaxAutoPrepare == 0)
            {
                dataSource.ConnectionStringBuilder.MaxAutoPrepare = 64;
            }

            // No statement leaves session state behind (advisory locks are released and LISTEN undone explicitly), so
            // skip the six-statement reset Npgsql otherwise sends each time a pooled connection is reused.
            if (!connectionString.Contains("No Reset On Close", StringComparison.OrdinalIgnoreCase))
            {
                dataSource.ConnectionStringBuilder.NoResetOnClose = true;
            }

            // Short statements only: JIT compiling one costs tens of milliseconds, and a claim over many queues has a
            // planner estimate high enough to trigger it while it runs in well under one. Off for the engine's
            // connections unless the connection string's Options set jit themselves.
            string options = dataSource.ConnectionStringBuilder.Options ?? "";
            if (!options.Contains("jit", StringComparison.OrdinalIgnoreCase))
            {
                dataSource.ConnectionStringBuilder.Options = (options + " -c jit=off").Trim();
            }
        }

        services.AddNpgsqlDataSource(connectionString, ConfigureDataSource);
        // The notification listener's one long-waiting connection, apart: with Npgsql's keepalive, which pings inside its
        // wait and breaks the connection when the ping goes unanswered (see DatabaseTimeouts).
        services.AddNpgsqlDataSource(connectionString, dataSource =>
        {
            ConfigureDataSource(dataSource);
            DatabaseTimeouts.ApplyListenerKeepalive(dataSource.ConnectionStringBuilder);
        }, serviceKey: OperationNotificationListener.DataSourceKey);
        services.AddSingleton(new OperationsDatabase(connectionString));
        services.AddMetrics();
        services.AddSingleton<OperationMetrics>();
        services.AddSingleton<DatabaseMigrator>();
        // Migrates in the background (retrying while the database is away) and then opens the gate the rest waits for.
        services.AddSingleton<DatabaseStartupGate>();
        services.AddHostedService<DatabaseMigrationService>();
        services.AddSingleton<OperationStore>();
        services.AddSingleton<CommitOutcomeResolver>();
        services.AddSingleton<OperationBatchWriter>();

        services.AddSingleton<CommandRegistry>();
        services.AddSingleton<FinishedOperationCache>();
        services.AddSingleton<AttemptStore>();
        services.AddSingleton<IConsistencyCheck, OperationConsistencyCheck>();
        services.AddSingleton<ConsistencyChecker>();

        // The worker (see OperationWorker): slots, the claim loop, attempts and their outcomes, leases.
        services.AddSingleton<WorkerContext>();
        services.AddSingleton<OperationWakeSignal>();
        services.AddSingleton<HandlerSlots>();
        services.AddSingleton<RunningHandlers>();
        services.AddSingleton<RetryBackoff>();
        services.AddSingleton<OutcomeWriter>();
        services.AddSingleton<AttemptOutcomes>();
        services.AddSingleton<AttemptRunner>();
        services.AddSingleton<ClaimLoop>();
        services.AddSingleton<KindSettingsStore>();
        services.AddSingleton<KindSettingsCache>();
        services.AddSingleton<LeaseKeeper>();
        services.AddSingleton<OperationWorker>();

        // The lifecycle: what the API does with operations, and the one fan-out of their changes.
        services.AddSingleton<OperationWaiters>();
        services.AddSingleton<OperationWatchers>();
        services.AddSingleton<OperationChangeFeed>();
        services.AddSingleton<OperationSignals>();
        services.AddSingleton<IOperationSignals>(sp => sp.GetRequiredService<OperationSignals>());
        services.AddSingleton<OperationWaiting>();
        services.AddSingleton<OperationQueries>();
        services.AddSingleton<Http.AdminStatsReader>();
        services.AddSingleton<OperationChanges>();
        services.AddSingleton<OperationKinds>();
        services.AddSingleton<OperationInserter>();
        services.AddSingleton<OperationSubmitter>();
        services.AddSingleton<OperationStatistics>();
        services.AddSingleton<OperationQueueEstimator>();
        services.AddSingleton<RetryAfterPolicy>();

        services.AddSingleton<TenantQuota>();
        AddSecurity(services);

        services.AddExceptionHandler<DatabaseUnavailableExceptionHandler>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IProblemDetailsWriter, JsonProblemDetailsWriter>());
        services.AddHealthChecks().AddCheck<DatabaseHealthCheck>("database", tags: ["ready"]);

        services.AddSingleton<OperationNotifier>();
        services.AddHostedService(sp => sp.GetRequiredService<OperationNotifier>());
        services.AddSingleton<OperationNotificationListener>();
        services.AddHostedService(sp => sp.GetRequiredService<OperationNotificationListener>());
        services.AddSingleton<KindSettingsRefresher>();
        services.AddHostedService(sp => sp.GetRequiredService<KindSettingsRefresher>());
        var jobs = new EngineJobs();
        services.AddSingleton(jobs);
        services.AddQuartz(quartz => ConfigureJobs(quartz, jobs, settings));
        services.AddQuartzHostedService(quartz => quartz.WaitForJobsToComplete = true);
        services.AddHostedService<EngineJobTriggers>();
        // The host must give the worker its whole drain time (and the release after it) before it gives up.
        services.Configure<Microsoft.Extensions.Hosting.HostOptions>(host =>
            host.ShutdownTimeout = TimeSpan.FromTicks(Math.Max(host.ShutdownTimeout.Ticks, (settings.ShutdownTimeout + TimeSpan.FromSeconds(10)).Ticks)));

        // Webhooks: subscriptions, and their deliveries as operations the engine runs for itself.
        services.AddOptions<Webhooks.WebhookOptions>().BindConfiguration(Webhooks.WebhookOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<Webhooks.WebhookOptions>, Webhooks.WebhookOptionsValidator>();
        services.AddSingleton<Webhooks.WebhookStore>();
        services.AddSingleton<Webhooks.WebhookSender>();
        return new OperationsBuilder(services)
            .AddInternalCommand<Webhooks.WebhookDelivery, Webhooks.WebhookDeliveryResult, Webhooks.WebhookDeliveryHandler>(
                Webhooks.WebhookDeliveryHandler.Kind, maxAttempts: 10);
    }

    /// <summary>
    /// Who may call the API: API keys (<c>X-Api-Key</c>), JWT bearer tokens when <c>Authentication:Jwt</c> names an
    /// authority and audience, anonymous development callers when <c>Authentication:AllowAnonymous</c> is on; a policy
    /// per scope (<see cref="OperationScopes"/>); <c>401</c>/<c>403</c> answered as problems; a token bucket per tenant.
    /// </summary>
    private static void AddSecurity(IServiceCollection services)
    {
        services.AddOptions<CallerAuthenticationOptions>().BindConfiguration(CallerAuthenticationOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<CallerAuthenticationOptions>, CallerAuthenticationOptionsValidator>();
        services.AddOptions<TenantRateLimitOptions>().BindConfiguration(TenantRateLimitOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<TenantRateLimitOptions>, TenantRateLimitOptionsValidator>();
        services.AddSingleton<ApiKeyStore>();
        services.AddSingleton<ApiKeyVerifier>();
        services.AddSingleton<CallerAuthenticator>();

        CallerAuthentication.AddSchemes(services);
        services.AddAuthorization(ScopePolicies.Add);
        services.AddSingleton<IAuthorizationHandler, ScopeRequirementHandler>();
        services.AddSingleton<IAuthorizationMiddlewareResultHandler, ProblemAuthorizationResultHandler>();
        TenantRateLimiting.Add(services);
    }

    /// <summary>Describes the response headers of the operations API in the OpenAPI document.</summary>
    public static OpenApiOptions AddOperationsTransformers(this OpenApiOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.AddOperationTransformer<ResponseDocumentationTransformer>();
        options.AddDocumentTransformer<OperationKindSchemaTransformer>();
        options.AddDocumentTransformer<SecurityDocumentationTransformer>();
        options.AddDocumentTransformer<WebhookCallbackTransformer>();
        options.AddOperationTransformer<SecurityDocumentationTransformer>();
        return options;
    }

    private static void ConfigureJobs(IQuartzBuilder quartz, EngineJobs jobs, OperationsOptions options)
    {
        quartz.UseInMemoryStore();
        jobs.Add<LeaseRescueJob>(quartz, LeaseRescueJob.Key, options.LeaseRescueInterval);
        jobs.Add<RetentionPurgeJob>(quartz, RetentionPurgeJob.Key, options.PurgeInterval);
        jobs.Add<ConsistencyCheckJob>(quartz, ConsistencyCheckJob.Key, options.ConsistencyCheckInterval, firstDelay: options.ConsistencyCheckInterval);

        // The statistics only feed API answers (Retry-After, a pending operation's queue estimate): a worker-only node has no use for them.
        if (options.Role is OperationsRole.All or OperationsRole.Api)
        {
            jobs.Add<StatisticsRefreshJob>(quartz, StatisticsRefreshJob.Key, TimeSpan.FromSeconds(5));
        }

        if (options.Role is OperationsRole.All or OperationsRole.Worker)
        {
            jobs.Add<OperationWorkerJob>(quartz, OperationWorkerJob.Key, TimeSpan.FromSeconds(5));
        }
    }
}

/// <summary>Registers commands with the operations engine.</summary>
public sealed class OperationsBuilder
{
    internal OperationsBuilder(IServiceCollection services) => Services = services;

    public IServiceCollection Services { get; }

    /// <summary>
    /// Registers a command: clients POST a <typeparamref name="TRequest"/> to <paramref name="route"/>, it is
    /// validated by the <see cref="IValidator{T}"/> registered for it (if any), stored as an operation of
    /// <paramref name="kind"/>, and run by <typeparamref name="THandler"/>.
    /// </summary>
    /// <param name="kind">The stable name stored with each operation, e.g. <c>billing.invoice</c>.</param>
    /// <param name="route">The route to POST the command to, e.g. <c>/v1/billing/invoices</c>.</param>
    /// <param name="maxAttempts">Attempts per operation; null takes <see cref="OperationsOptions.DefaultMaxAttempts"/>.</param>
    /// <param name="replay">Whether a failed or cancelled operation may be replayed; null is <see cref="CommandReplay.Allowed"/>.</param>
    public OperationsBuilder AddCommand<TRequest, TResult, THandler>(string kind, string route, int? maxAttempts = null,
        CommandReplay? replay = null)
        where TRequest : notnull
        where TResult : notnull
        where THandler : class, IOperationHandler<TRequest, TResult> =>
        Add<TRequest, TResult, THandler>(kind, route, maxAttempts, replay, transactional: false, (handler, request, context, ct) =>
            handler.HandleAsync(request, context, ct));

    /// <summary>
    /// Registers a command whose handler runs in the engine's transaction
    /// (<see cref="TransactionalOperationContext.Transaction"/>): its database writes commit atomically with the
    /// <c>succeeded</c> transition, or not at all. Otherwise as <see cref="AddCommand{TRequest, TResult, THandler}"/>.
    /// </summary>
    public OperationsBuilder AddTransactionalCommand<TRequest, TResult, THandler>(string kind, string route, int? maxAttempts = null,
        CommandReplay? replay = null)
        where TRequest : notnull
        where TResult : notnull
        where THandler : class, ITransactionalOperationHandler<TRequest, TResult> =>
        Add<TRequest, TResult, THandler>(kind, route, maxAttempts, replay, transactional: true, (handler, request, context, ct) =>
            handler.HandleAsync(request, (TransactionalOperationContext)context, ct));

    /// <summary>A kind the engine runs for itself (webhook deliveries): stored by the engine, never submitted over HTTP.</summary>
    internal OperationsBuilder AddInternalCommand<TRequest, TResult, THandler>(string kind, int maxAttempts)
        where TRequest : notnull
        where TResult : notnull
        where THandler : class, IOperationHandler<TRequest, TResult> =>
        Add<TRequest, TResult, THandler>(kind, "", maxAttempts, CommandReplay.Allowed, transactional: false,
            (handler, request, context, ct) => handler.HandleAsync(request, context, ct), mapEndpoint: (_, _) => { });

    /// <summary>Adds the embedded SQL migrations of <paramref name="assembly"/> (resources under a <c>Migrations</c> folder).</summary>
    public OperationsBuilder AddMigrations(System.Reflection.Assembly assembly)
    {
        Services.AddSingleton(new MigrationSource(assembly));
        return this;
    }

    /// <summary>Adds a check that <c>GET /v1/admin/consistency</c> and the consistency job run.</summary>
    public OperationsBuilder AddConsistencyCheck<TCheck>()
        where TCheck : class, IConsistencyCheck
    {
        Services.AddSingleton<IConsistencyCheck, TCheck>();
        return this;
    }

    private OperationsBuilder Add<TRequest, TResult, THandler>(string kind, string route, int? maxAttempts, CommandReplay? replay, bool transactional,
        Func<THandler, TRequest, OperationContext, CancellationToken, Task<TResult>> handle,
        Action<Microsoft.AspNetCore.Routing.IEndpointRouteBuilder, CommandDescriptor>? mapEndpoint = null)
        where TRequest : notnull
        where TResult : notnull
        where THandler : class
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(kind);
        if (mapEndpoint is null)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(route);
        }
        if (maxAttempts is < 1 or > 100)
        {
            throw new ArgumentOutOfRangeException(nameof(maxAttempts), maxAttempts, "A command gets 1 to 100 attempts.");
        }

        Services.AddScoped<THandler>();
        Services.AddSingleton(new CommandDescriptor(kind, route, typeof(TRequest), typeof(TResult), maxAttempts, transactional,
            async (services, payload, context, cancellationToken) =>
            {
                var request = JsonSerializer.Deserialize<TRequest>(payload, OperationJson.Options)
                    ?? throw new PermanentOperationFailureException(ProblemTypes.HandlerFailed, "The stored request is empty.");
                var result = await handle(services.GetRequiredService<THandler>(), request, context, cancellationToken).ConfigureAwait(false);
                return JsonSerializer.Serialize(result, OperationJson.Options);
            },
            mapEndpoint ?? CommandEndpoint.Map<TRequest>, replay));
        return this;
    }
}
