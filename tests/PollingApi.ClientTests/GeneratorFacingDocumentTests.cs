using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using PollingApi.ClientTests.Infrastructure;

namespace PollingApi.ClientTests;

/// <summary>
/// The shape of the served OpenAPI document that generators and linters read: the operation schema is the base of
/// a hierarchy discriminated by <c>kind</c>, each command's operation has its own typed result, and tags are described.
/// </summary>
public sealed class GeneratorFacingDocumentTests(ClientTestsFactory factory) : IClassFixture<ClientTestsFactory>
{
    private const string Schemas = "#/components/schemas/";

    [Fact]
    public async Task TheOperationSchemaIsDiscriminatedByKindAndMapsEachCommandToItsOwnSchema()
    {
        var schemas = await GetSchemasAsync();

        var operation = schemas.GetProperty("OperationResource");
        var discriminator = operation.GetProperty("discriminator");
        Assert.Equal("kind", discriminator.GetProperty("propertyName").GetString());
        Assert.Equal(Schemas + "DiagnosticsSleepOperation", discriminator.GetProperty("mapping").GetProperty("diagnostics.sleep").GetString());
        Assert.Contains("kind", operation.GetProperty("required").EnumerateArray().Select(e => e.GetString()));
        Assert.False(operation.GetProperty("properties").TryGetProperty("result", out _),
            "The base operation schema still has an untyped result.");
        Assert.False(schemas.TryGetProperty("JsonElement", out _), "The untyped JsonElement schema is still in the document.");
    }

    [Fact]
    public async Task ACommandsOperationSchemaExtendsTheBaseWithItsNullableTypedResult()
    {
        var schemas = await GetSchemasAsync();

        var allOf = schemas.GetProperty("DiagnosticsSleepOperation").GetProperty("allOf");
        Assert.Equal(2, allOf.GetArrayLength());
        Assert.Equal(Schemas + "OperationResource", allOf[0].GetProperty("$ref").GetString());
        var own = allOf[1];
        Assert.Equal(["result"], own.GetProperty("required").EnumerateArray().Select(e => e.GetString()));
        var result = own.GetProperty("properties").GetProperty("result").GetProperty("oneOf");
        Assert.Equal(2, result.GetArrayLength());
        var nullBranch = result[0];
        Assert.Equal("object", nullBranch.GetProperty("type").GetString());
        Assert.True(nullBranch.GetProperty("nullable").GetBoolean());
        Assert.Equal(JsonValueKind.Null, Assert.Single(nullBranch.GetProperty("enum").EnumerateArray()).ValueKind);
        Assert.Equal(Schemas + "SleepResult", result[1].GetProperty("$ref").GetString());

        var sleepResult = schemas.GetProperty("SleepResult");
        Assert.Equal(["sleptMs", "attempt"], sleepResult.GetProperty("required").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("integer", sleepResult.GetProperty("properties").GetProperty("sleptMs").GetProperty("type").GetString());
        Assert.Equal("How long the successful attempt slept, in milliseconds.",
            sleepResult.GetProperty("properties").GetProperty("sleptMs").GetProperty("description").GetString());
    }

    [Fact]
    public async Task TheSubmitRouteAnswersItsCommandsOwnOperationAndStatusIsAStringEnum()
    {
        var document = await GetDocumentAsync();

        Assert.StartsWith("3.0.", document.GetProperty("openapi").GetString(), StringComparison.Ordinal);
        var accepted = document.GetProperty("paths").GetProperty("/v1/diagnostics/sleep").GetProperty("post")
            .GetProperty("responses").GetProperty("202").GetProperty("content").GetProperty("application/json").GetProperty("schema");
        Assert.Equal(Schemas + "DiagnosticsSleepOperation", accepted.GetProperty("$ref").GetString());

        var state = document.GetProperty("components").GetProperty("schemas").GetProperty("OperationState");
        Assert.Equal("string", state.GetProperty("type").GetString());
        Assert.Equal(["pending", "running", "succeeded", "failed", "cancelled"],
            state.GetProperty("enum").EnumerateArray().Select(e => e.GetString()));
        Assert.False(string.IsNullOrWhiteSpace(state.GetProperty("description").GetString()));
    }

    [Fact]
    public async Task TheEnginesTagsAreDescribedAndTheHostCanDescribeItsOwn()
    {
        // Program.cs describes the host's own tag with AddTagDescription.
        var tags = (await GetDocumentAsync(factory)).GetProperty("tags").EnumerateArray()
            .ToDictionary(tag => tag.GetProperty("name").GetString()!, tag => tag.TryGetProperty("description", out var d) ? d.GetString() : null);

        Assert.Equal("Accounts and their balances; opening accounts and transfers are commands.", tags["Ledger"]);
        foreach (string engineTag in new[] { "Commands", "Operations" })
        {
            Assert.False(string.IsNullOrWhiteSpace(tags[engineTag]), $"The tag {engineTag} has no description.");
        }
    }

    private async Task<JsonElement> GetSchemasAsync() =>
        (await GetDocumentAsync()).GetProperty("components").GetProperty("schemas");

    private Task<JsonElement> GetDocumentAsync() => GetDocumentAsync(factory);

    private static async Task<JsonElement> GetDocumentAsync(WebApplicationFactory<Program> host)
    {
        using var client = host.CreateClient();
        using var response = await client.GetAsync(new Uri("/openapi/v1.json", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.Clone();
    }
}
