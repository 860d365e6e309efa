using System.Globalization;

namespace PollingApi.FuzzTests.Generation;

/// <summary>
/// Every request that does not fuzz its own <c>traceparent</c> carries one whose trace id names the request: the seed
/// in the first 8 hex digits, the request's number in the last 16. The API puts the trace id in its log scopes and in
/// every problem's <c>traceId</c>, so an error in its log leads back to the request that caused it.
/// </summary>
internal static class TraceIds
{
    public static string TraceParent(int seed, long number) => $"00-{TraceId(seed, number)}-{number:x16}-01";

    public static string TraceId(int seed, long number) =>
        $"{(uint)seed:x8}00000000{number:x16}";

    /// <summary>The request number a trace id names, when it was made for this seed.</summary>
    public static long? RequestNumber(int seed, string traceId) =>
        traceId.Length == 32
        && traceId.StartsWith($"{(uint)seed:x8}00000000", StringComparison.Ordinal)
        && long.TryParse(traceId.AsSpan(16), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out long number)
            ? number
            : null;
}
