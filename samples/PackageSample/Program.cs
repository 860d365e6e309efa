// An ASP.NET Core app that adds the asynchronous request-reply pattern with the PollingApi.Operations package:
// POST /v1/greetings answers 202 with an operation, GET its Location until it is done.
//
//   ConnectionStrings__Operations="Host=127.0.0.1;Username=postgres;Database=postgres" dotnet run --project samples/PackageSample
using FluentValidation;
using PackageSample.Greetings;
using PollingApi.Operations;
using PollingApi.Operations.Http;

var builder = WebApplication.CreateBuilder(args);

string? connectionString = builder.Configuration.GetConnectionString("Operations");
if (string.IsNullOrWhiteSpace(connectionString))
{
    throw new InvalidOperationException("Set ConnectionStrings__Operations to a PostgreSQL database.");
}

builder.Services.AddProblemDetails();
builder.Services.AddValidatorsFromAssemblyContaining<CreateGreetingRequestValidator>();
builder.Services.AddOperations(builder.Configuration, connectionString)
    .AddCommand<CreateGreetingRequest, CreateGreetingResult, CreateGreetingHandler>("greetings.create", "/v1/greetings");

var app = builder.Build();

app.UseExceptionHandler();
app.UseStatusCodePages();
// Callers authenticate with API keys (or JWTs) and are authorized by scope; this sample lets anonymous callers in
// (Authentication:AllowAnonymous in appsettings.json), as a development setup does.
app.UseOperationsSecurity();
app.MapHealthChecks("/health/ready");
app.MapOperations();

await app.RunAsync();
