using System.ComponentModel;
using System.Globalization;
using PollingApi.Operations.Storage;
using PollingApi.Operations.Model;

namespace PollingApi.Operations.Http;

/// <summary>A page of operations, newest first.</summary>
[Description("A page of operations, newest first.")]
internal sealed record OperationPage(
    [property: Description("The operations on this page.")] IReadOnlyList<OperationResource> Items,
    [property: Description("Pass as cursor to get the next page; null on the last page.")] string? NextCursor);

/// <summary>Reads and checks the query of <c>GET /v1/operations</c>.</summary>
internal static class OperationPageRequest
{
    public const int DefaultLimit = 20;
    public const int MaxLimit = 100;

    public static bool TryParse(string? status, string? kind, string? tenant, string? createdAfter, string? createdBefore, string? limit, string? cursor,
        out OperationQuery query, out Dictionary<string, string[]> errors)
    {
        errors = [];
        if (status is not null && !OperationStatus.All.Contains(status, StringComparer.Ordinal))
        {
            errors["status"] = [$"'status' must be one of {string.Join(", ", OperationStatus.All)}."];
        }

        FilterChecks.Check(kind, null, tenant, errors);

        var after = FilterChecks.ParseTime(createdAfter, "createdAfter", errors);
        var before = FilterChecks.ParseTime(createdBefore, "createdBefore", errors);

        int pageSize = DefaultLimit;
        if (limit is not null && (!int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out pageSize) || pageSize is < 1 or > MaxLimit))
        {
            errors["limit"] = [$"'limit' must be a whole number from 1 to {MaxLimit}."];
        }

        Guid? position = null;
        if (cursor is not null)
        {
            if (TryReadCursor(cursor, out var id))
            {
                position = id;
            }
            else
            {
                errors["cursor"] = ["'cursor' must be a nextCursor value from an earlier page."];
            }
        }

        query = new OperationQuery(status, kind, after, before, position, pageSize, tenant);
        return errors.Count == 0;
    }

    /// <summary>An opaque cursor: the last id of a page, base64url-encoded.</summary>
    public static string CursorAfter(Guid id)
    {
        Span<byte> bytes = stackalloc byte[16];
        id.TryWriteBytes(bytes, bigEndian: true, out _);
        return Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    private static bool TryReadCursor(string cursor, out Guid id)
    {
        id = Guid.Empty;
        if (cursor.Length != 22)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[16];
        string base64 = cursor.Replace('-', '+').Replace('_', '/') + "==";
        if (!Convert.TryFromBase64String(base64, bytes, out int written) || written != 16)
        {
            return false;
        }

        id = new Guid(bytes, bigEndian: true);
        return true;
    }
}
