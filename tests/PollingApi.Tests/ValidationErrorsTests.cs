using FluentValidation;
using PollingApi.Operations.Http;

namespace PollingApi.Tests;

/// <summary>Validation errors name fields as the JSON does, keys and messages alike, without FluentValidation's global settings.</summary>
public sealed class ValidationErrorsTests
{
    [Fact]
    public void MessagesAndKeysUseJsonNamesForPropertiesCollectionsAndComparedProperties()
    {
        var errors = ValidationErrors.ByJsonName(new OrderValidator().Validate(new Order(0, ["ok", ""], "a", "b", "")).Errors);

        Assert.Equal(["'durationMs' must be greater than '0'."], errors["durationMs"]);
        Assert.Equal(["'addressLines' must not be empty."], errors["addressLines[1]"]);
        Assert.Equal(["'confirmPassword' must be equal to 'a'.", "'confirmPassword' must match 'password'."], errors["confirmPassword"]);
        Assert.Equal(["'Customer reference' must not be empty."], errors["customerReference"]);
    }

    private sealed record Order(int DurationMs, string[] AddressLines, string Password, string ConfirmPassword, string CustomerReference);

    private sealed class OrderValidator : AbstractValidator<Order>
    {
        public OrderValidator()
        {
            RuleFor(o => o.DurationMs).GreaterThan(0);
            RuleForEach(o => o.AddressLines).NotEmpty();
            RuleFor(o => o.ConfirmPassword).Equal(o => o.Password);
            RuleFor(o => o.ConfirmPassword).Equal(o => o.Password).WithMessage("'{PropertyName}' must match '{ComparisonProperty}'.");
            RuleFor(o => o.CustomerReference).NotEmpty().WithName("Customer reference");
        }
    }
}
