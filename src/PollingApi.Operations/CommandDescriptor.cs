using Microsoft.AspNetCore.Routing;
using PollingApi.Operations.Handlers;

namespace PollingApi.Operations;

/// <summary>Everything the engine knows about one registered command kind.</summary>
internal sealed class CommandDescriptor
{
    internal CommandDescriptor(string kind, string route, Type requestType, Type resultType, int? maxAttempts, bool transactional,
        Func<IServiceProvider, string, OperationContext, CancellationToken, Task<string>> execute,
        Action<IEndpointRouteBuilder, CommandDescriptor> mapEndpoint, CommandReplay? replay = null)
    {
        Replay = replay ?? CommandReplay.Allowed;
        Kind = kind;
        Route = route;
        RequestType = requestType;
        ResultType = resultType;
        MaxAttempts = maxAttempts;
        Transactional = transactional;
        Execute = execute;
        MapEndpoint = mapEndpoint;
    }

    /// <summary>The stable name stored with each operation, e.g. <c>diagnostics.sleep</c>.</summary>
    public string Kind { get; }

    /// <summary>The route clients POST the command to, e.g. <c>/v1/diagnostics/sleep</c>.</summary>
    public string Route { get; }

    public Type RequestType { get; }

    public Type ResultType { get; }

    /// <summary>Attempts for this kind; null takes <see cref="OperationsOptions.DefaultMaxAttempts"/>.</summary>
    public int? MaxAttempts { get; }

    /// <summary>Whether and for how long a failed or cancelled operation of this kind may be replayed.</summary>
    public CommandReplay Replay { get; }

    /// <summary>Whether the handler runs in the engine's transaction (see <see cref="Handlers.TransactionalOperationContext.Transaction"/>).</summary>
    public bool Transactional { get; }

    /// <summary>Deserialises the stored payload, runs the handler and serialises its result.</summary>
    internal Func<IServiceProvider, string, OperationContext, CancellationToken, Task<string>> Execute { get; }

    internal Action<IEndpointRouteBuilder, CommandDescriptor> MapEndpoint { get; }

    /// <summary>A kind as a name in code: <c>diagnostics.sleep</c> is <c>DiagnosticsSleep</c> (its endpoint's and schema's names).</summary>
    public static string PascalName(string kind) =>
        string.Concat(kind.Split('.', '-', '_').Select(part => part.Length == 0 ? part : char.ToUpperInvariant(part[0]) + part[1..]));
}

/// <summary>The registered commands, by kind.</summary>
internal sealed class CommandRegistry
{
    private readonly Dictionary<string, CommandDescriptor> _byKind;

    public CommandRegistry(IEnumerable<CommandDescriptor> commands)
    {
        _byKind = new Dictionary<string, CommandDescriptor>(StringComparer.Ordinal);
        foreach (var command in commands)
        {
            if (!_byKind.TryAdd(command.Kind, command))
            {
                throw new InvalidOperationException($"The command kind '{command.Kind}' is registered twice.");
            }
        }

        var duplicateRoute = _byKind.Values.Where(c => c.Route.Length > 0).GroupBy(c => c.Route, StringComparer.OrdinalIgnoreCase)
            .FirstOrDefault(g => g.Count() > 1);
        if (duplicateRoute is not null)
        {
            throw new InvalidOperationException($"The route '{duplicateRoute.Key}' is registered by more than one command.");
        }
    }

    public IReadOnlyCollection<CommandDescriptor> All => _byKind.Values;

    public CommandDescriptor? Find(string kind) => _byKind.GetValueOrDefault(kind);
}
