using PollingApi.Harness;

namespace PollingApi.Benchmarks;

/// <summary>How the end-to-end scenarios wait for a submitted operation's result.</summary>
internal enum WaitMode
{
    /// <summary>One request: <c>POST</c> with <c>Prefer: respond-async, wait=N</c>, answered 200 when done.</summary>
    Prefer,

    /// <summary>Two requests: <c>POST</c> (202), then <c>GET {Location}?wait=N</c>.</summary>
    LongPoll,
}

/// <summary>What the command line asked for: how long, how many and how often.</summary>
internal sealed record BenchmarkSettings
{
    public const string Usage = """
        usage: PollingApi.Benchmarks [options]            (normally run by scripts/bench.sh)

          --quick             1 run, 2 s warm-up, 5 s windows, (g) with 100000 rows, (k) with 5000 operations:
                              about 3 minutes in all
          --runs N            repeat the whole set N times on fresh clusters and report the median (default 3)
          --seconds S         measured window of each scenario (default 10)
          --warmup S          warm-up before each window (default 3)
          --api-warmup S      mixed traffic right after the API starts, before (a), so that the JIT's tier-up is
                              mostly done before anything is measured (default 20)
          --clients N         concurrent clients of (a), (b), (d) and pgbench (default 32)
          --light-ops N       least operations measured in (c), whatever the window (default 500)
          --seed-rows N       finished operations inserted before (g) (default 10000000, quick 100000)
          --claim-ops N       pending no-ops seeded for each of (k)'s three drains (default 20000, quick 5000)
          --wait-mode MODE    how (b) and (c) wait for the result: prefer (Prefer: wait, default) or long-poll
          --api-dll PATH      the PollingApi build to run (default src/PollingApi/bin/Release/net10.0/PollingApi.dll)
          --api-env NAME=VAL  extra environment for the API process, repeatable (e.g. Operations__MaxConcurrency=64,
                              DOTNET_PerfMapEnabled=1 for perf); the JSON line lists them
          --run-dir PATH      where the API's logs and pgbench's scripts go (default artifacts/benchmarks/<timestamp>)
          --peer DIR          the Hangfire peer (h) runs from DIR/bin/Release/net10.0/hangfire-api.dll (default
                              ../shared/peers/hangfire-api; scripts/bench.sh builds it); (h) is left out when it is not there
          --no-peer           leave (h) out
          --statements        diagnosis: load pg_stat_statements (a server restart before the API starts) and print the
                              top statements of each API window; the extension costs a little, so say so when quoting

        Prints progress on standard error and the results on standard output: a markdown table and one JSON line
        starting with {"benchmark":. Exits 0 when everything was measured (also when targets are missed), 1 when
        something broke (error answers, the API died, a step timed out), 2 on a usage error, 130 when interrupted.
        """;

    public int Runs { get; init; } = 3;

    public bool Quick { get; init; }

    public TimeSpan Window { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(3);

    public TimeSpan ApiWarmup { get; init; } = TimeSpan.FromSeconds(20);

    public int Clients { get; init; } = 32;

    public int LightOperations { get; init; } = 500;

    public int SeedRows { get; init; } = 10_000_000;

    /// <summary>Pending no-ops (k) seeds for each of its drains: one tenant, 100 tenants, one tenant with the kind capped.</summary>
    public int ClaimOperations { get; init; } = 20_000;

    public WaitMode WaitMode { get; init; } = WaitMode.Prefer;

    /// <summary>Whether to load pg_stat_statements and report the top statements of each API window.</summary>
    public bool Statements { get; init; }

    public required string ApiDll { get; init; }

    public required string RunDirectory { get; init; }

    /// <summary>The Hangfire peer's built dll for (h); null when (h) is left out.</summary>
    public string? PeerDll { get; init; }

    /// <summary>The peer folder (h) looks in when none is given, relative to the repository's root.</summary>
    public const string DefaultPeerDirectory = "../shared/peers/hangfire-api";

    /// <summary>(h): the pause between two polls of a pending operation, the same for both services.</summary>
    public static readonly TimeSpan PeerPollPause = TimeSpan.FromMilliseconds(10);

    /// <summary>Extra environment variables for the API process; empty for the production configuration.</summary>
    public IReadOnlyDictionary<string, string> ApiEnvironment { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>The longest a request may be held by <c>Prefer: wait</c> or <c>?wait=</c>, in seconds.</summary>
    public const int WaitSeconds = 30;

    /// <summary>Rows in pgbench's primary-key SELECT table.</summary>
    public const int SelectTableRows = 100_000;

    /// <summary>Server-sent event streams (i) holds open on the node while (b)'s load runs.</summary>
    public const int EventStreams = 1000;

    /// <summary>What (i)'s streams follow: every operation of the kind the load submits, each change of it.</summary>
    public const string EventStreamPath = "v1/operations/events?kind=diagnostics.sleep";

    /// <summary>Long-polls (i) holds open on the node at once, one per scheduled operation.</summary>
    public const int LongPolls = 10_000;

    /// <summary>The tenants (k)'s second drain spreads its operations over, round-robin.</summary>
    public const int ClaimTenants = 100;

    /// <summary>No-op operations (j) submits per second of the window, each delivered to the local receiver.</summary>
    public const int WebhookOperationsPerWindowSecond = 1000;

    /// <summary>No-op operations (j) submits: a delivery window of a few seconds at the quick size.</summary>
    public int WebhookOperations => (int)Math.Max(100, WebhookOperationsPerWindowSecond * Window.TotalSeconds);

    /// <summary>Parses the command line; throws <see cref="ArgumentException"/> with a message for the user when it is wrong.</summary>
    public static BenchmarkSettings Parse(IReadOnlyList<string> args, DateTimeOffset now)
    {
        bool quick = args.Contains("--quick", StringComparer.Ordinal);
        int runs = quick ? 1 : 3;
        int seconds = quick ? 5 : 10;
        int warmup = quick ? 2 : 3;
        int apiWarmup = 20;
        int clients = 32;
        int lightOperations = 500;
        int seedRows = quick ? 100_000 : 10_000_000;
        int claimOperations = quick ? 5_000 : 20_000;
        var waitMode = WaitMode.Prefer;
        var paths = new PathOptions("benchmarks", now);
        var apiEnvironment = new Dictionary<string, string>(StringComparer.Ordinal);
        bool statements = false;
        string? peerDirectory = DefaultPeerDirectory;
        bool peerRequired = false;

        var reader = new CommandLineReader(args);
        while (reader.MoveNext())
        {
            if (paths.TryRead(reader))
            {
                continue;
            }

            switch (reader.Current)
            {
                case "--quick":
                    break;
                case "--runs":
                    runs = reader.WholeNumber(1, 15);
                    break;
                case "--seconds":
                    seconds = reader.WholeNumber(1, 600);
                    break;
                case "--warmup":
                    warmup = reader.WholeNumber(0, 120);
                    break;
                case "--api-warmup":
                    apiWarmup = reader.WholeNumber(0, 600);
                    break;
                case "--clients":
                    clients = reader.WholeNumber(1, 256);
                    break;
                case "--light-ops":
                    lightOperations = reader.WholeNumber(1, 1_000_000);
                    break;
                case "--seed-rows":
                    seedRows = reader.WholeNumber(0, 50_000_000);
                    break;
                case "--claim-ops":
                    claimOperations = reader.WholeNumber(100, 5_000_000);
                    break;
                case "--wait-mode":
                    string mode = reader.Value();
                    waitMode = mode switch
                    {
                        "prefer" => WaitMode.Prefer,
                        "long-poll" => WaitMode.LongPoll,
                        _ => throw new ArgumentException($"--wait-mode must be prefer or long-poll, not '{mode}'."),
                    };
                    break;
                case "--statements":
                    statements = true;
                    break;
                case "--peer":
                    peerDirectory = reader.Value();
                    peerRequired = true;
                    break;
                case "--no-peer":
                    peerDirectory = null;
                    break;
                case "--api-env":
                    string variable = reader.Value();
                    int equals = variable.IndexOf('=', StringComparison.Ordinal);
                    if (equals < 1)
                    {
                        throw new ArgumentException($"--api-env must be NAME=VALUE, not '{variable}'.");
                    }

                    apiEnvironment[variable[..equals]] = variable[(equals + 1)..];
                    break;
                default:
                    throw new ArgumentException($"Unknown argument '{reader.Current}'.");
            }
        }

        string? peerDll = peerDirectory is null ? null : Path.GetFullPath(Path.Combine(peerDirectory, "bin", "Release", "net10.0", "hangfire-api.dll"));
        if (peerDll is not null && !File.Exists(peerDll))
        {
            if (peerRequired)
            {
                throw new ArgumentException($"--peer: {peerDll} is not there; build it first (dotnet build -c Release {peerDirectory}).");
            }

            peerDll = null;
        }

        return new BenchmarkSettings
        {
            PeerDll = peerDll,
            Quick = quick,
            Runs = runs,
            Window = TimeSpan.FromSeconds(seconds),
            Warmup = TimeSpan.FromSeconds(warmup),
            ApiWarmup = TimeSpan.FromSeconds(apiWarmup),
            Clients = clients,
            LightOperations = lightOperations,
            SeedRows = seedRows,
            ClaimOperations = claimOperations,
            WaitMode = waitMode,
            ApiDll = paths.ApiDll,
            RunDirectory = paths.RunDirectory,
            ApiEnvironment = apiEnvironment,
            Statements = statements,
        };
    }
}
