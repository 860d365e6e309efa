using System.Text.Json;
using System.Text.Json.Serialization;

namespace PollingApi.Operations;

/// <summary>How requests, results and errors are written to and read from JSON.</summary>
internal static class OperationJson
{
    /// <summary>
    /// camelCase, as on the wire, and exactly so: unknown request properties, properties in another case and properties
    /// given twice are errors, so neither a typo nor a smuggled second value is silently taken.
    /// </summary>
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        PropertyNameCaseInsensitive = false,
        AllowDuplicateProperties = false,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        NumberHandling = JsonNumberHandling.Strict,
    };
}
