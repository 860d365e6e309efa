namespace PollingApi.Operations.Model;

/// <summary>Tells a purged operation (410) from one that never existed (404) by the time in its UUIDv7 id.</summary>
internal static class OperationExpiry
{
    /// <summary>
    /// When a UUIDv7 says it was made; DateTime.MaxValue for a time past what DateTime holds (the 48-bit field reaches
    /// the year 10889), which no operation of this service can have.
    /// </summary>
    public static DateTime CreatedAt(Guid id)
    {
        // The first 48 bits of a UUIDv7 are milliseconds since the Unix epoch, in network byte order.
        Span<byte> bytes = stackalloc byte[16];
        id.TryWriteBytes(bytes, bigEndian: true, out _);
        long milliseconds = 0;
        for (int i = 0; i < 6; i++)
        {
            milliseconds = (milliseconds << 8) | bytes[i];
        }

        return milliseconds > MaxMilliseconds ? DateTime.MaxValue : DateTime.UnixEpoch.AddMilliseconds(milliseconds);
    }

    public static bool IsPastRetention(Guid id, DateTime now, TimeSpan retention) =>
        id.Version == 7 && CreatedAt(id) < now - retention;

    private static readonly long MaxMilliseconds = (long)(DateTime.MaxValue - DateTime.UnixEpoch).TotalMilliseconds;
}
