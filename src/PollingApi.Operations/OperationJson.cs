using System.Text.Json;
using System.Text.Json.Serialization;

namespace PollingApi.Operations;

/// <summary>How requests, results and errors are written to and read from JSON.</summary>
internal static class OperationJson
{
    /// <summary>camelCase, as on the wire; unknown request properties are an error, so a typo is not silently ignored.</summary>
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        NumberHandling = JsonNumberHandling.Strict,
    };
}
