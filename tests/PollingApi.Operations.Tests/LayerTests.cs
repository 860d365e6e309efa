using System.Reflection;
using NetArchTest.Rules;

namespace PollingApi.Operations.Tests;

/// <summary>
/// The engine's layers point one way: Http -> {Lifecycle, Security} and Lifecycle -> {Worker, Consistency, Storage} -> Model,
/// Security (who the caller is) -> Storage (the keys), Telemetry (the instruments) below them all, Webhooks (subscriptions
/// and deliveries) beside Http and above the rest, with the handler API and the options as the public face every layer
/// may use. Read from the compiled assembly, so a dependency that
/// sneaks in through a fully qualified name counts as much as a <c>using</c>.
/// </summary>
public sealed class LayerTests
{
    private const string Engine = "PollingApi.Operations";
    private static readonly Assembly Assembly = typeof(OperationsOptions).Assembly;

    public static TheoryData<string, string[]> Layers => new()
    {
        { "Model", ["Handlers", "Storage", "Worker", "Consistency", "Lifecycle", "Security", "Http", "Webhooks"] },
        { "Handlers", ["Storage", "Worker", "Consistency", "Lifecycle", "Security", "Http", "Webhooks"] },
        { "Storage", ["Worker", "Consistency", "Lifecycle", "Security", "Http", "Webhooks"] },
        { "Consistency", ["Worker", "Lifecycle", "Security", "Http", "Webhooks"] },
        { "Worker", ["Lifecycle", "Security", "Http", "Webhooks"] },
        { "Lifecycle", ["Security", "Http", "Webhooks"] },
        { "Security", ["Worker", "Consistency", "Lifecycle", "Http", "Webhooks"] },
        { "Telemetry", ["Handlers", "Storage", "Worker", "Consistency", "Lifecycle", "Security", "Http", "Webhooks"] },
        // The dashboard is static files that talk to the public JSON API: it reaches into no layer.
        { "Dashboard", ["Handlers", "Storage", "Worker", "Consistency", "Lifecycle", "Security", "Http", "Telemetry", "Webhooks"] },
    };

    [Theory]
    [MemberData(nameof(Layers))]
    public void ALayerDependsOnNothingAboveIt(string layer, string[] above)
    {
        var result = Types.InAssembly(Assembly)
            .That().ResideInNamespace($"{Engine}.{layer}")
            .ShouldNot().HaveDependencyOnAny([.. above.Select(name => $"{Engine}.{name}")])
            .GetResult();

        Assert.True(result.IsSuccessful,
            $"{layer} depends on a layer above it ({string.Join(", ", above)}): {string.Join(", ", result.FailingTypeNames ?? [])}");
    }

    [Fact]
    public void OnlyTheCompositionRootWiresTheEngineTogether()
    {
        var result = Types.InAssembly(Assembly)
            .That().DoNotHaveName("OperationsServiceCollectionExtensions", "OperationsBuilder")
            .ShouldNot().HaveDependencyOnAny($"{Engine}.OperationsServiceCollectionExtensions", $"{Engine}.OperationsBuilder")
            .GetResult();

        Assert.True(result.IsSuccessful, $"Types that reach the composition root: {string.Join(", ", result.FailingTypeNames ?? [])}");
    }

    [Fact]
    public void AHostSeesOnlyTheEnginesPublicFace()
    {
        string[] expected =
        [
            "PollingApi.Operations.CommandReplay",
            "PollingApi.Operations.ConsistencyFinding",
            "PollingApi.Operations.Dashboard.OperationsDashboard",
            "PollingApi.Operations.Handlers.IOperationHandler`2",
            "PollingApi.Operations.Handlers.ITransactionalOperationHandler`2",
            "PollingApi.Operations.Handlers.OperationContext",
            "PollingApi.Operations.Handlers.PermanentOperationFailureException",
            "PollingApi.Operations.Handlers.RetryOperationLaterException",
            "PollingApi.Operations.Handlers.TransactionalOperationContext",
            "PollingApi.Operations.Http.OpenApi.OpenApiTagDescriptions",
            "PollingApi.Operations.Http.OperationsApi",
            "PollingApi.Operations.Http.ResponseDocumentation",
            "PollingApi.Operations.Http.ResponseHeader",
            "PollingApi.Operations.Http.ResponseHeaders",
            "PollingApi.Operations.IConsistencyCheck",
            "PollingApi.Operations.Model.OperationCaller",
            "PollingApi.Operations.OperationsBuilder",
            "PollingApi.Operations.OperationsOptions",
            "PollingApi.Operations.OperationsRole",
            "PollingApi.Operations.OperationsServiceCollectionExtensions",
            "PollingApi.Operations.ProblemTypes",
            "PollingApi.Operations.Security.ApiKeysCommandLine",
            "PollingApi.Operations.Security.OperationCallerExtensions",
            "PollingApi.Operations.Security.OperationScopes",
            "PollingApi.Operations.Telemetry.OperationsTelemetry",
        ];

        var exported = Assembly.GetExportedTypes().Select(type => type.FullName!).Order(StringComparer.Ordinal).ToArray();

        Assert.Equal(expected, exported);
    }
}
