using PollingApi.Harness;

namespace PollingApi.FaultTests;

/// <summary>What the command line asked for: which scenarios, how big, and where things are.</summary>
internal sealed record FaultTestSettings
{
    public const string Usage = """
        usage: PollingApi.FaultTests <crash|outage|shutdown|webhooks|clock-skew|network-stall|any-node|pg-crash|all> [options]

          --operations N      crash, webhooks, clock-skew, network-stall, any-node, pg-crash: operations to submit
                              (default 3000, 600, 3000, 3000, 3000 and 2000; 10000+ is fine)
          --duration S        crash, webhooks, clock-skew, network-stall, any-node, pg-crash: shortest load phase in
                              seconds, faults throughout (default max(30, N/100), max(20, N/30), max(30, N/100),
                              max(77, N/100), max(40, N/100) and max(30, N/100)); outage: how long PostgreSQL is down
                              (default 10)
          --kill-interval S   crash, webhooks, any-node: seconds between two node kills (default 3)
          --clients N         crash, webhooks, any-node, pg-crash: concurrent HTTP clients (default 16)
          --seed N            random seed (default: derived from the clock; printed)
          --skip-ledger       crash, any-node, pg-crash: sleeps only (for a build without /v1/accounts and /v1/transfers)
          --api-dll PATH      the PollingApi build to run (default src/PollingApi/bin/Release/net10.0/PollingApi.dll)
          --run-dir PATH      where the node logs go (default artifacts/fault-tests/<timestamp>)

        Prints one JSON summary line per scenario ({"scenario": ...}) and exits 0 when no invariant was
        violated, 1 when one was, 2 on a usage error, 3 when the harness itself failed, 130 when interrupted.
        """;

    public required IReadOnlyList<string> Scenarios { get; init; }

    /// <summary>Null: the scenario's own default.</summary>
    public int? Operations { get; init; }

    /// <summary>Null: the scenario's own default.</summary>
    public TimeSpan? Duration { get; init; }

    public TimeSpan KillInterval { get; init; } = TimeSpan.FromSeconds(3);

    public int Clients { get; init; } = 16;

    public int Seed { get; init; }

    public bool SkipLedger { get; init; }

    public required string ApiDll { get; init; }

    public required string RunDirectory { get; init; }

    /// <summary>Parses the command line; throws <see cref="ArgumentException"/> with a message for the user when it is wrong.</summary>
    public static FaultTestSettings Parse(IReadOnlyList<string> args, DateTimeOffset now)
    {
        string? scenario = null;
        int? operations = null;
        TimeSpan? duration = null;
        var killInterval = TimeSpan.FromSeconds(3);
        int clients = 16;
        int? seed = null;
        bool skipLedger = false;
        var paths = new PathOptions("fault-tests", now);

        var reader = new CommandLineReader(args);
        while (reader.MoveNext())
        {
            if (paths.TryRead(reader))
            {
                continue;
            }

            switch (reader.Current)
            {
                case "--operations":
                    operations = reader.WholeNumber(1, 1_000_000);
                    break;
                case "--duration":
                    duration = TimeSpan.FromSeconds(reader.WholeNumber(1, 3600));
                    break;
                case "--kill-interval":
                    killInterval = TimeSpan.FromSeconds(reader.WholeNumber(1, 600));
                    break;
                case "--clients":
                    clients = reader.WholeNumber(1, 256);
                    break;
                case "--seed":
                    seed = reader.WholeNumber(0, int.MaxValue);
                    break;
                case "--skip-ledger":
                    skipLedger = true;
                    break;
                case "crash" or "outage" or "shutdown" or "webhooks" or "clock-skew" or "network-stall" or "any-node" or "pg-crash" or "all"
                    when scenario is null:
                    scenario = reader.Current;
                    break;
                default:
                    throw new ArgumentException($"Unknown argument '{reader.Current}'.");
            }
        }

        if (scenario is null)
        {
            throw new ArgumentException("Name a scenario: crash, outage, shutdown, webhooks, clock-skew, network-stall, any-node, pg-crash or all.");
        }

        return new FaultTestSettings
        {
            Scenarios = scenario == "all" ? ["crash", "outage", "shutdown", "webhooks", "clock-skew", "network-stall", "any-node", "pg-crash"] : [scenario],
            Operations = operations,
            Duration = duration,
            KillInterval = killInterval,
            Clients = clients,
            Seed = seed ?? (int)(now.ToUnixTimeMilliseconds() % int.MaxValue),
            SkipLedger = skipLedger,
            ApiDll = paths.ApiDll,
            RunDirectory = paths.RunDirectory,
        };
    }
}
