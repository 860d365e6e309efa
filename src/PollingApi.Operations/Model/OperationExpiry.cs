namespace PollingApi.Operations.Model;

/// <summary>Tells a purged operation (410) from one that never existed (404) by the time in its UUIDv7 id.</summary>
internal static class OperationExpiry
{
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

        return DateTime.UnixEpoch.AddMilliseconds(milliseconds);
    }

    public static bool IsPastRetention(Guid id, DateTime now, TimeSpan retention) =>
        id.Version == 7 && CreatedAt(id) < now - retention;
}
