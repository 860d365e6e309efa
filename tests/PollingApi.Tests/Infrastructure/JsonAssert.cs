using System.Text.Json;
using System.Text.Json.Nodes;

namespace PollingApi.Tests.Infrastructure;

public static class JsonAssert
{
    /// <summary>Asserts that two JSON values are equal, ignoring property order and whitespace.</summary>
    public static void Equivalent(string expected, JsonElement actual) => Equivalent(expected, actual.GetRawText());

    /// <inheritdoc cref="Equivalent(string, JsonElement)"/>
    public static void Equivalent(string expected, string actual) =>
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expected), JsonNode.Parse(actual)), $"Expected {expected}, got {actual}");
}
