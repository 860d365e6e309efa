using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace PollingApi.Harness;

/// <summary>
/// Steps through a harness's command line one argument at a time and reads the values of its options; a missing
/// or out-of-range value is an <see cref="ArgumentException"/> whose message is meant for the user.
/// </summary>
public sealed class CommandLineReader(IReadOnlyList<string> args)
{
    private int _index = -1;

    /// <summary>The argument <see cref="MoveNext"/> stepped onto (an option, not one of its values).</summary>
    public string Current { get; private set; } = string.Empty;

    /// <summary>Steps onto the next argument; false when there is none left.</summary>
    public bool MoveNext()
    {
        if (_index + 1 >= args.Count)
        {
            _index = args.Count;
            return false;
        }

        Current = args[++_index];
        return true;
    }

    /// <summary>Takes the argument after <see cref="Current"/> as its value.</summary>
    public string Value() =>
        _index + 1 < args.Count ? args[++_index] : throw new ArgumentException($"{Current} needs a value.");

    /// <summary>Takes the argument after <see cref="Current"/> as a whole number from <paramref name="min"/> to <paramref name="max"/>.</summary>
    public int WholeNumber(int min, int max)
    {
        string value = Value();
        return int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int parsed) && parsed >= min && parsed <= max
            ? parsed
            : throw new ArgumentException($"{Current} must be a whole number from {min} to {max}, not '{value}'.");
    }

    /// <summary>
    /// Runs <paramref name="parse"/>; when it throws <see cref="ArgumentException"/>, writes the message and then
    /// <paramref name="usage"/> to standard error and returns false.
    /// </summary>
    public static bool TryParse<T>(Func<T> parse, string usage, [NotNullWhen(true)] out T? settings)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(parse);
        try
        {
            settings = parse();
            return true;
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine(ex.Message);
            Console.Error.WriteLine(usage);
            settings = null;
            return false;
        }
    }
}
