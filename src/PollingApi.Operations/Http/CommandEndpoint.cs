using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using FluentValidation;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using PollingApi.Operations.Processing;
using PollingApi.Operations.Storage;

namespace PollingApi.Operations.Http;

/// <summary>
/// The submit endpoint every command shares: read and validate the body, store the operation, wake the
/// local worker and answer <c>202</c> with the status monitor. The <c>202</c> is sent only after the row is
/// committed.
/// </summary>
internal static class CommandEndpoint
{
    public static void Map<TRequest>(IEndpointRouteBuilder endpoints, CommandDescriptor command)
        where TRequest : notnull
    {
        string name = string.Concat(command.Kind.Split('.', '-', '_').Select(part =>
            part.Length == 0 ? part : char.ToUpperInvariant(part[0]) + part[1..]));

        endpoints.MapPost(command.Route, (HttpContext http, CancellationToken cancellationToken) =>
                SubmitAsync<TRequest>(http, command, cancellationToken))
            .WithTags("Commands")
            .WithName("Submit" + name)
            .WithSummary($"Submit a {command.Kind} command")
            .WithDescription($"""
                Validates and stores a `{command.Kind}` command and answers `202 Accepted` at once with its
                operation. Poll the `Location` (or `Operation-Location`) URL until `done` is true; the result
                then has the `{command.ResultType.Name}` shape.
                """)
            .Accepts<TRequest>("application/json")
            .Produces<OperationResource>(StatusCodes.Status202Accepted)
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status202Accepted,
                "The command is stored (committed) as a pending operation: poll its Location.",
                ResponseHeaders.Location, ResponseHeaders.OperationLocation, ResponseHeaders.RetryAfter))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status400BadRequest,
                "The body is not valid JSON (malformed-json) or breaks a rule (validation-failed, with errors per field)."))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status413PayloadTooLarge, "The body is over the configured limit (payload-too-large)."))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status415UnsupportedMediaType, "The body is not sent as application/json."))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status503ServiceUnavailable,
                "The database cannot be reached and nothing was stored: retry after Retry-After seconds.", ResponseHeaders.RetryAfter));
    }

    private static async Task<Results<Accepted<OperationResource>, ValidationProblem, ProblemHttpResult>> SubmitAsync<TRequest>(
        HttpContext http, CommandDescriptor command, CancellationToken cancellationToken)
        where TRequest : notnull
    {
        var services = http.RequestServices;
        var options = services.GetRequiredService<IOptions<OperationsOptions>>().Value;

        var body = await ReadBodyAsync(http, options.MaxRequestBodyBytes, cancellationToken).ConfigureAwait(false);
        if (body.Problem is not null)
        {
            return body.Problem;
        }

        TRequest? request;
        try
        {
            request = JsonSerializer.Deserialize<TRequest>(body.Bytes.Span, OperationJson.Options);
        }
        catch (JsonException ex)
        {
            string where = ex.Path is null or "$" ? "" : $" at {ex.Path}";
            string position = ex.LineNumber is { } line ? $" (line {line + 1}, byte {ex.BytePositionInLine + 1})" : "";
            return Problems.MalformedJson($"The body could not be read as a {command.Kind} command{where}{position}: " +
                                          "check the JSON syntax, the property names and the value types.");
        }

        if (request is null)
        {
            return Problems.MalformedJson("The body must be a JSON object.");
        }

        if (services.GetService<IValidator<TRequest>>() is { } validator)
        {
            var validation = await validator.ValidateAsync(request, cancellationToken).ConfigureAwait(false);
            if (!validation.IsValid)
            {
                var errors = validation.Errors
                    .GroupBy(e => JsonNamingPolicy.CamelCase.ConvertName(e.PropertyName), StringComparer.Ordinal)
                    .ToDictionary(g => g.Key, g => g.Select(e => e.ErrorMessage).ToArray(), StringComparer.Ordinal);
                return Problems.Validation(errors);
            }
        }

        var timeProvider = services.GetRequiredService<TimeProvider>();
        var now = timeProvider.GetUtcNow();
        var operation = new NewOperation(
            Guid.CreateVersion7(now),
            OperationOwner.Default,
            command.Kind,
            JsonSerializer.Serialize(request, OperationJson.Options),
            command.MaxAttempts ?? options.DefaultMaxAttempts,
            Activity.Current?.Id);

        var row = await services.GetRequiredService<OperationStore>().InsertAsync(operation, now.UtcDateTime, cancellationToken)
            .ConfigureAwait(false);
        services.GetRequiredService<OperationWakeSignal>().Wake();

        string self = OperationLinkBuilder.Self(http.Request, row.Id);
        http.Response.Headers["Operation-Location"] = self;
        http.Response.Headers.RetryAfter = services.GetRequiredService<RetryAfterPolicy>().SecondsFor(row)
            .ToString(CultureInfo.InvariantCulture);
        return TypedResults.Accepted(self, OperationResource.From(row, self));
    }

    private readonly record struct Body(ReadOnlyMemory<byte> Bytes, ProblemHttpResult? Problem);

    private static async Task<Body> ReadBodyAsync(HttpContext http, long limit, CancellationToken cancellationToken)
    {
        var request = http.Request;
        if (!request.HasJsonContentType())
        {
            return new Body(default, Problems.UnsupportedMediaType(request.ContentType));
        }

        if (request.ContentLength > limit)
        {
            return new Body(default, Problems.PayloadTooLarge(limit));
        }

        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
        {
            sizeFeature.MaxRequestBodySize = limit;
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[8192];
        try
        {
            int read;
            while ((read = await request.Body.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (buffer.Length + read > limit)
                {
                    return new Body(default, Problems.PayloadTooLarge(limit));
                }

                buffer.Write(chunk, 0, read);
            }
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return new Body(default, Problems.PayloadTooLarge(limit));
        }

        if (buffer.Length == 0)
        {
            return new Body(default, Problems.MalformedJson("The body is empty; send the command as a JSON object."));
        }

        return new Body(buffer.ToArray(), null);
    }
}
