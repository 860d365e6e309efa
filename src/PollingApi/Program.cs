using System.Text.Json.Serialization;
using FluentValidation;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using PollingApi;
using Microsoft.Extensions.Options;
using PollingApi.Diagnostics;
using PollingApi.Ledger;
using PollingApi.Operations;
using PollingApi.Operations.Dashboard;
using PollingApi.Operations.Http;
using PollingApi.Operations.Http.OpenApi;
using PollingApi.Operations.Security;
using Microsoft.AspNetCore.HostFiltering;

// "api-keys create|list|revoke" manages API keys instead of serving (see ApiKeysCommandLine).
bool keysCommand = ApiKeysCommandLine.IsInvocation(args);
var builder = WebApplication.CreateBuilder(args);
if (keysCommand)
{
    // Standard output carries the command's answer (a new key) and nothing else.
    // Standard error gets warnings and errors only (a rule added after the configuration's, so it wins over its Default).
    builder.Logging.ClearProviders().AddConsole(console => console.LogToStandardErrorThreshold = LogLevel.Trace)
        .AddFilter((string?)null, LogLevel.Warning);
}

builder.WebHost.ConfigureKestrel((context, kestrel) =>
{
    // Answers do not name the server software.
    kestrel.AddServerHeader = false;
    // Connection, header and keep-alive limits (see docs/security.md).
    context.Configuration.GetSection("Kestrel:Limits").Bind(kestrel.Limits);
});
// AllowedHosts is enforced by AllowedHostsFilter, after the forwarded headers are applied and with a problem answer.
builder.Services.PostConfigure<HostFilteringOptions>(hosts => hosts.AllowedHosts = ["*"]);

if (keysCommand && string.IsNullOrWhiteSpace(builder.Configuration.GetConnectionString(LocalDatabase.ConnectionStringName)))
{
    await Console.Error.WriteLineAsync(
        "api-keys needs the database the API uses: set ConnectionStrings__Operations (a throwaway local cluster keeps no keys).");
    return 2;
}

var (connectionString, localCluster) = await LocalDatabase.ResolveAsync(builder.Configuration, CancellationToken.None);
await using var disposeLocalCluster = localCluster;

builder.Services.AddProblemDetails(ProblemDetailsConventions.Configure);
// Numbers are numbers: "5" is not accepted for an integer, and the OpenAPI schemas say "integer", not "integer or string".
builder.Services.ConfigureHttpJsonOptions(json => json.SerializerOptions.NumberHandling = JsonNumberHandling.Strict);
builder.Services.AddOpenApi(options =>
{
    // OpenAPI 3.0: what every client generator reads without surprises.
    options.OpenApiVersion = Microsoft.OpenApi.OpenApiSpecVersion.OpenApi3_0;
    options.AddOperationsTransformers().AddPollingApiDocumentInfo()
        .AddTagDescription("Ledger", "Accounts and their balances; opening accounts and transfers are commands.");
});
builder.Services.AddValidatorsFromAssemblyContaining<Program>();

builder.AddPollingApiTelemetry();

var forwardedHeaders = builder.Configuration.GetSection(ForwardedHeadersSettings.SectionName).Get<ForwardedHeadersSettings>()
                       ?? new ForwardedHeadersSettings();
builder.Services.Configure<ForwardedHeadersOptions>(forwardedHeaders.Apply);

var operations = builder.Services.AddOperations(builder.Configuration, connectionString)
    .AddLedger();
if (builder.Configuration.GetSection(DiagnosticsOptions.SectionName).Get<DiagnosticsOptions>()?.Enabled ?? false)
{
    operations.AddCommand<SleepRequest, SleepResult, SleepHandler>("diagnostics.sleep", "/v1/diagnostics/sleep");
}

var app = builder.Build();
if (keysCommand)
{
    return await ApiKeysCommandLine.RunAsync(args, app.Services, Console.Out, Console.Error, CancellationToken.None);
}

AccessWarnings.Log(app);

if (forwardedHeaders.Enabled)
{
    app.UseForwardedHeaders();
}

app.UseAllowedHosts();

// Clients take every answer as the media type it declares.
app.Use((context, next) =>
{
    context.Response.Headers.XContentTypeOptions = "nosniff";
    return next(context);
});
app.UseExceptionHandler();
app.UseStatusCodePages();
app.UseOperationsSecurity();

// The one document, at a fixed path: any other name is an unknown route (a 404 problem, not the generator's text).
app.MapOpenApi("/openapi/v1.json");
app.UseSwaggerUI(ui =>
{
    ui.SwaggerEndpoint("/openapi/v1.json", "PollingApi v1");
    ui.RoutePrefix = "swagger";
});
app.MapMetrics();
app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false });
app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = check => check.Tags.Contains("ready") });
app.MapOperations();
if (app.Services.GetRequiredService<IOptions<OperationsOptions>>().Value.Role != OperationsRole.Worker)
{
    app.MapAccounts();
    if (app.Configuration.GetValue("Dashboard:Enabled", defaultValue: true))
    {
        app.MapOperationsDashboard();
    }
}

await app.RunAsync();
// 0, unless the node stopped itself because it failed to start (Operations:StartupDatabaseTimeout passed, a migration failed).
return Environment.ExitCode;

/// <summary>The API host; public so that tests can start it.</summary>
public partial class Program;
