using System.Net;
using System.Text.Json;

namespace PollingApi.Tests.Infrastructure;

/// <summary>Checks the one error shape of the API: an RFC 9457 problem with DESIGN's fields.</summary>
public static class ProblemAssert
{
    /// <summary>
    /// Asserts that <paramref name="response"/> is an <c>application/problem+json</c> answer with the given status,
    /// a <c>type</c> (the given one when not null), <c>title</c>, <c>status</c>, <c>detail</c>, an <c>instance</c>
    /// naming the request path, a <c>traceId</c>, and no .NET exception text. Returns the problem.
    /// </summary>
    public static JsonElement IsProblem(ApiResponse response, HttpStatusCode status, string? type, string requestPath)
    {
        ArgumentNullException.ThrowIfNull(response);
        Assert.True(response.Status == status, $"Expected {(int)status}, got {response}");
        Assert.Equal("application/problem+json", response.MediaType);
        NoExceptionText(response.Body);

        var problem = response.Json;
        Assert.Equal(JsonValueKind.Object, problem.ValueKind);
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        string actualType = NonEmptyString(problem, "type");
        if (type is not null)
        {
            Assert.Equal(type, actualType);
        }

        NonEmptyString(problem, "title");
        NonEmptyString(problem, "detail");
        Assert.Contains(requestPath, NonEmptyString(problem, "instance"), StringComparison.Ordinal);
        NonEmptyString(problem, "traceId");
        return problem;
    }

    /// <summary>Asserts that no exception type names or stack frames reached the caller.</summary>
    public static void NoExceptionText(string body)
    {
        ArgumentNullException.ThrowIfNull(body);
        Assert.DoesNotContain("Exception", body, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", body, StringComparison.Ordinal);
        Assert.DoesNotContain("Npgsql", body, StringComparison.Ordinal);
    }

    private static string NonEmptyString(JsonElement problem, string name)
    {
        Assert.True(problem.TryGetProperty(name, out var value), $"The problem has no '{name}': {problem}");
        Assert.Equal(JsonValueKind.String, value.ValueKind);
        string text = value.GetString()!;
        Assert.False(string.IsNullOrWhiteSpace(text), $"The problem's '{name}' is empty: {problem}");
        return text;
    }
}
