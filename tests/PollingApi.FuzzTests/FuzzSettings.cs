using PollingApi.Harness;

namespace PollingApi.FuzzTests;

/// <summary>What the command line asked for: how many requests, from which seed, for how long, and where things are.</summary>
internal sealed record FuzzSettings
{
    public const string Usage = """
        usage: PollingApi.FuzzTests [options]

          --requests N        hostile requests to send (default 10000; CI sends 2000)
          --seed N            the generator's seed (default: derived from the clock; printed, so a run can be repeated)
          --duration-limit S  stop sending after S seconds even if fewer than N were sent (default 900)
          --concurrency N     parallel senders (default 8)
          --only N            send only request number N of the seed's sequence (to reproduce one finding)
          --api-dll PATH      the PollingApi build to run (default src/PollingApi/bin/Release/net10.0/PollingApi.dll)
          --run-dir PATH      where the API's logs go (default artifacts/fuzz-tests/<timestamp>)

        Exits 0 when every check held, 1 when one was violated, 2 on a usage error, 3 when the harness itself
        failed, 130 when interrupted.
        """;

    public int Requests { get; init; } = 10_000;

    public int Seed { get; init; }

    public TimeSpan DurationLimit { get; init; } = TimeSpan.FromSeconds(900);

    public int Concurrency { get; init; } = 8;

    /// <summary>Null: the whole sequence from 1 to <see cref="Requests"/> (and beyond when the client refuses some).</summary>
    public long? Only { get; init; }

    public required string ApiDll { get; init; }

    public required string RunDirectory { get; init; }

    /// <summary>Parses the command line; throws <see cref="ArgumentException"/> with a message for the user when it is wrong.</summary>
    public static FuzzSettings Parse(IReadOnlyList<string> args, DateTimeOffset now)
    {
        int requests = 10_000;
        int? seed = null;
        var durationLimit = TimeSpan.FromSeconds(900);
        int concurrency = 8;
        long? only = null;
        var paths = new PathOptions("fuzz-tests", now);

        var reader = new CommandLineReader(args);
        while (reader.MoveNext())
        {
            if (paths.TryRead(reader))
            {
                continue;
            }

            switch (reader.Current)
            {
                case "--requests":
                    requests = reader.WholeNumber(1, 10_000_000);
                    break;
                case "--seed":
                    seed = reader.WholeNumber(0, int.MaxValue);
                    break;
                case "--duration-limit":
                    durationLimit = TimeSpan.FromSeconds(reader.WholeNumber(1, 86_400));
                    break;
                case "--concurrency":
                    concurrency = reader.WholeNumber(1, 64);
                    break;
                case "--only":
                    only = reader.WholeNumber(1, int.MaxValue);
                    break;
                default:
                    throw new ArgumentException($"Unknown argument '{reader.Current}'.");
            }
        }

        return new FuzzSettings
        {
            Requests = only is null ? requests : 1,
            Seed = seed ?? (int)(now.ToUnixTimeMilliseconds() % int.MaxValue),
            DurationLimit = durationLimit,
            Concurrency = only is null ? concurrency : 1,
            Only = only,
            ApiDll = paths.ApiDll,
            RunDirectory = paths.RunDirectory,
        };
    }
}
