using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace PollingApi.Operations.Security;

/// <summary>
/// API keys as clients hold them: <c>pak_</c> and 256 random bits in base64url. Only their SHA-256 hash is stored; with
/// that much randomness a fast hash is enough (there is nothing to guess or to look up in a dictionary).
/// </summary>
internal static class ApiKeySecret
{
    public const string Prefix = "pak_";
    private const int RandomBytes = 32;
    private static readonly int Length = Prefix.Length + Base64Url.GetEncodedLength(RandomBytes);

    public static string Create() => Prefix + Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(RandomBytes));

    /// <summary>Whether <paramref name="key"/> has the shape of a key: anything else is refused without a database read.</summary>
    public static bool HasKeyShape(string? key) =>
        key is not null && key.Length == Length && key.StartsWith(Prefix, StringComparison.Ordinal)
        && !key.AsSpan(Prefix.Length).ContainsAnyExcept(Base64UrlAlphabet);

    public static byte[] Hash(string key) => SHA256.HashData(Encoding.ASCII.GetBytes(key));

    /// <summary>What lists show to tell keys apart: the prefix and the first characters.</summary>
    public static string Display(string key) => key[..(Prefix.Length + 6)];

    private static readonly System.Buffers.SearchValues<char> Base64UrlAlphabet =
        System.Buffers.SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
}
