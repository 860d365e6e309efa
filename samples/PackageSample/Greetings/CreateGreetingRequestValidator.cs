using FluentValidation;

namespace PackageSample.Greetings;

public sealed class CreateGreetingRequestValidator : AbstractValidator<CreateGreetingRequest>
{
    public CreateGreetingRequestValidator() => RuleFor(r => r.Name).NotEmpty().MaximumLength(100);
}
