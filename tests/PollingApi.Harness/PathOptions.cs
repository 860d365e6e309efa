using System.Globalization;

namespace PollingApi.Harness;

/// <summary>
/// Reads the two options both harnesses take for where things are: <c>--api-dll PATH</c>, the PollingApi build to
/// run (default <c>src/PollingApi/bin/Release/net10.0/PollingApi.dll</c>), and <c>--run-dir PATH</c>, where the logs
/// go (default <c>artifacts/&lt;harness&gt;/&lt;timestamp&gt;</c>). Relative paths are taken from the current folder.
/// </summary>
public sealed class PathOptions(string artifactsFolder, DateTimeOffset now)
{
    private string _apiDll = Path.Combine("src", "PollingApi", "bin", "Release", "net10.0", "PollingApi.dll");
    private string _runDirectory = Path.Combine("artifacts", artifactsFolder, now.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture));

    /// <summary>The full path of the PollingApi build to run.</summary>
    public string ApiDll => Path.GetFullPath(_apiDll);

    /// <summary>The full path of the folder the logs go to.</summary>
    public string RunDirectory => Path.GetFullPath(_runDirectory);

    /// <summary>Reads the reader's current option and its value when it is one of these two; false when it is another.</summary>
    public bool TryRead(CommandLineReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        switch (reader.Current)
        {
            case "--api-dll":
                _apiDll = reader.Value();
                return true;
            case "--run-dir":
                _runDirectory = reader.Value();
                return true;
            default:
                return false;
        }
    }
}
