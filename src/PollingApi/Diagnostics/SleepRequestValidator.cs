using FluentValidation;

namespace PollingApi.Diagnostics;

public sealed class SleepRequestValidator : AbstractValidator<SleepRequest>
{
    public SleepRequestValidator()
    {
        RuleFor(r => r.DurationMs).NotNull().InclusiveBetween(0, 600_000);
        RuleFor(r => r.FailTimes).InclusiveBetween(0, 100);
    }
}
