namespace PackageSample.Greetings;

/// <summary>The greeting, and the operation that made it.</summary>
public sealed record CreateGreetingResult(string Greeting, Guid OperationId);
