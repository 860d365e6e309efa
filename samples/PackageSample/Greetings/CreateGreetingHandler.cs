using PollingApi.Operations.Handlers;

namespace PackageSample.Greetings;

/// <summary>Runs <c>greetings.create</c>. It has no side effects, so running it again after a crash is harmless.</summary>
public sealed class CreateGreetingHandler : IOperationHandler<CreateGreetingRequest, CreateGreetingResult>
{
    public async Task<CreateGreetingResult> HandleAsync(CreateGreetingRequest request, OperationContext context,
        CancellationToken cancellationToken)
    {
        await context.ReportProgressAsync(50, "composing", cancellationToken);
        return new CreateGreetingResult($"Hello, {request.Name}!", context.OperationId);
    }
}
