using System.Net;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>The service endpoints: the OpenAPI document (and its committed copy), Swagger UI, health.</summary>
public sealed class ServiceDocumentTests(ApiOnlyPollingApiFactory factory) : IClassFixture<ApiOnlyPollingApiFactory>
{
    private const string UpdateVariable = "POLLINGAPI_UPDATE_OPENAPI";

    private static readonly JsonSerializerOptions Indented = new()
    {
        WriteIndented = true,
        NewLine = "\n",
        // The committed file is read by people: keep backticks, quotes and '<' readable.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task TheOpenApiDocumentDescribesTheSubmitRouteWithItsResponsesAndHeaders()
    {
        var document = await GetDocumentAsync();

        var post = document.GetProperty("paths").GetProperty("/v1/diagnostics/sleep").GetProperty("post");
        Assert.True(post.GetProperty("requestBody").GetProperty("content").TryGetProperty("application/json", out _));
        var responses = post.GetProperty("responses");
        foreach (string code in new[] { "202", "400", "413", "415", "503" })
        {
            Assert.True(responses.TryGetProperty(code, out _), $"The submit route does not document {code}.");
        }

        var headers = responses.GetProperty("202").GetProperty("headers");
        Assert.True(headers.TryGetProperty("Location", out _), "202 does not document Location.");
        Assert.True(headers.TryGetProperty("Operation-Location", out _), "202 does not document Operation-Location.");
        Assert.Equal("integer", headers.GetProperty("Retry-After").GetProperty("schema").GetProperty("type").GetString());
        Assert.True(responses.GetProperty("503").GetProperty("headers").TryGetProperty("Retry-After", out _),
            "503 does not document Retry-After.");
    }

    [Fact]
    public async Task TheOpenApiDocumentDescribesThePollingRouteWithItsResponsesAndRetryAfter()
    {
        var document = await GetDocumentAsync();

        var get = document.GetProperty("paths").GetProperty("/v1/operations/{id}").GetProperty("get");
        var responses = get.GetProperty("responses");
        foreach (string code in new[] { "200", "202", "400", "404", "503" })
        {
            Assert.True(responses.TryGetProperty(code, out _), $"The polling route does not document {code}.");
        }

        Assert.True(responses.GetProperty("202").GetProperty("headers").TryGetProperty("Retry-After", out _),
            "202 does not document Retry-After.");
        Assert.True(responses.GetProperty("503").GetProperty("headers").TryGetProperty("Retry-After", out _),
            "503 does not document Retry-After.");
    }

    [Fact]
    public async Task TheServedOpenApiDocumentMatchesTheCommittedFile()
    {
        var response = await _client.FetchAsync("/openapi/v1.json");
        Assert.True(response.Status == HttpStatusCode.OK, response.ToString());
        string served = Normalise(response.Body);
        string path = Path.Combine(RepositoryRoot(), "openapi", "v1.json");

        if (Environment.GetEnvironmentVariable(UpdateVariable) == "1")
        {
            await File.WriteAllTextAsync(path, served);
            return;
        }

        string how = $"If the change is intended, regenerate the file with `{UpdateVariable}=1 dotnet test tests/PollingApi.Tests " +
                     $"--filter {nameof(TheServedOpenApiDocumentMatchesTheCommittedFile)}` (or `{UpdateVariable}=1 scripts/test.sh`) " +
                     "and commit openapi/v1.json.";
        Assert.True(File.Exists(path), $"{path} does not exist. {how}");
        string committed = Normalise(await File.ReadAllTextAsync(path));
        if (!JsonNode.DeepEquals(JsonNode.Parse(committed), JsonNode.Parse(served)))
        {
            Assert.Fail($"The served OpenAPI document differs from {path} ({FirstDifference(committed, served)}). {how}");
        }
    }

    [Fact]
    public async Task SwaggerUiIsServedAndPointsAtTheOpenApiDocument()
    {
        var page = await _client.FetchAsync("/swagger/index.html");

        Assert.True(page.Status == HttpStatusCode.OK, page.ToString());
        Assert.Equal("text/html", page.MediaType);
        Assert.Contains("swagger-ui", page.Body, StringComparison.Ordinal);
        var script = await _client.FetchAsync("/swagger/index.js");
        Assert.True(script.Status == HttpStatusCode.OK, script.ToString());
        Assert.Contains("/openapi/v1.json", script.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LivenessAndReadinessAnswer200WhenTheDatabaseIsUp()
    {
        var live = await _client.FetchAsync("/health/live");
        var ready = await _client.FetchAsync("/health/ready");

        Assert.True(live.Status == HttpStatusCode.OK, live.ToString());
        Assert.True(ready.Status == HttpStatusCode.OK, ready.ToString());
    }

    private async Task<JsonElement> GetDocumentAsync()
    {
        var response = await _client.FetchAsync("/openapi/v1.json");
        Assert.True(response.Status == HttpStatusCode.OK, response.ToString());
        Assert.Equal("application/json", response.MediaType);
        return response.Json;
    }

    /// <summary>The document re-serialised with indentation and a trailing newline: the form the file is committed in.</summary>
    private static string Normalise(string json) => JsonNode.Parse(json)!.ToJsonString(Indented) + "\n";

    private static string FirstDifference(string expected, string actual)
    {
        string[] expectedLines = expected.Split('\n');
        string[] actualLines = actual.Split('\n');
        for (int i = 0; i < Math.Max(expectedLines.Length, actualLines.Length); i++)
        {
            string? committedLine = i < expectedLines.Length ? expectedLines[i] : null;
            string? servedLine = i < actualLines.Length ? actualLines[i] : null;
            if (committedLine != servedLine)
            {
                return $"first at line {i + 1}: committed `{committedLine?.Trim()}`, served `{servedLine?.Trim()}`";
            }
        }

        return "same text, different structure";
    }

    private static string RepositoryRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "PollingApi.sln")))
            {
                return folder.FullName;
            }
        }

        throw new InvalidOperationException($"No folder above {AppContext.BaseDirectory} contains PollingApi.sln.");
    }
}
