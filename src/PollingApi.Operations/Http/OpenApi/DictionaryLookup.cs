namespace PollingApi.Operations.Http.OpenApi;

/// <summary>The OpenAPI object model's maps are <see cref="IDictionary{TKey, TValue}"/>, which has no GetValueOrDefault.</summary>
internal static class DictionaryLookup
{
    public static TValue? Find<TKey, TValue>(this IDictionary<TKey, TValue>? dictionary, TKey key)
        where TKey : notnull =>
        dictionary is not null && dictionary.TryGetValue(key, out var value) ? value : default;
}
