namespace PackageSample.Greetings;

/// <summary>Whom to greet.</summary>
public sealed record CreateGreetingRequest(string Name);
