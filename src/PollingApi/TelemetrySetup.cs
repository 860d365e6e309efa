using Npgsql;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using PollingApi.Operations.Security;
using PollingApi.Operations.Telemetry;

namespace PollingApi;

/// <summary>
/// Metrics and traces with the OpenTelemetry SDK: the engine's meter, ASP.NET Core's and Npgsql's, served in Prometheus
/// text format on <c>GET /metrics</c>; with <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> set, metrics and traces (the engine's
/// attempt spans, ASP.NET Core's and Npgsql's) are also exported over OTLP. Without an OTLP endpoint no spans are
/// recorded, so requests pay nothing for tracing.
/// </summary>
internal static class TelemetrySetup
{
    public const string MetricsPath = "/metrics";

    public static void AddPollingApiTelemetry(this WebApplicationBuilder builder)
    {
        bool otlp = !string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        var telemetry = builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("pollingapi"))
            .WithMetrics(metrics =>
            {
                // ASP.NET Core's request and connection meters, not its routing, authentication, authorization and rate
                // limiting ones: each of those records on every request, for series nobody alerts on.
                metrics.AddMeter(OperationsTelemetry.MeterName, "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel")
                    .AddNpgsqlInstrumentation()
                    // Npgsql's command duration and its pool are kept; its per-command byte and in-flight counters are four
                    // more recordings on every statement, for figures PostgreSQL's own statistics give better.
                    .AddView("db.client.operation.npgsql.bytes_read", MetricStreamConfiguration.Drop)
                    .AddView("db.client.operation.npgsql.bytes_written", MetricStreamConfiguration.Drop)
                    .AddView("db.client.operation.npgsql.executing", MetricStreamConfiguration.Drop)
                    .AddPrometheusExporter();
                if (otlp)
                {
                    metrics.AddOtlpExporter();
                }
            });
        if (otlp)
        {
            telemetry.WithTracing(tracing => tracing
                .AddSource(OperationsTelemetry.ActivitySourceName)
                .AddAspNetCoreInstrumentation(aspNetCore => aspNetCore.Filter = http => !http.Request.Path.StartsWithSegments(MetricsPath))
                .AddNpgsql()
                .AddOtlpExporter());
        }
    }

    /// <summary><c>GET /metrics</c>: anonymous (what Prometheus scrapes), or admin-only when <c>Metrics:RequireAuthorization</c> is true.</summary>
    public static void MapMetrics(this WebApplication app)
    {
        var endpoint = app.MapPrometheusScrapingEndpoint(MetricsPath);
        if (app.Configuration.GetValue<bool>("Metrics:RequireAuthorization"))
        {
            endpoint.RequireAuthorization(OperationScopes.Admin);
        }
    }
}
