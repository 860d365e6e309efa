using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace PollingApi.LocalPostgres;

/// <summary>
/// A throwaway PostgreSQL cluster in a temporary folder, created with <c>initdb</c> and run with
/// <c>pg_ctl</c> on a free loopback port. It is for development and tests only: it trusts every
/// local connection, and <see cref="DisposeAsync"/> stops it and deletes its files.
/// When the current user is root, the server runs as the <c>postgres</c> OS user, because
/// PostgreSQL refuses to run as root.
/// </summary>
public sealed class LocalPostgresCluster : IAsyncDisposable
{
    private const string FolderPrefix = "pollingapi-pg-";
    private const string OwnerLockFile = "owner.lock";
    private static readonly string[] BinaryFolders = FindBinaryFolders();

    private readonly string _dataDirectory;
    private readonly string _root;
    private FileStream? _ownerLock;
    private string _serverOptions = "";
    private readonly bool _runAsPostgresUser;
    private bool _stopped;

    private LocalPostgresCluster(string root, int port, bool runAsPostgresUser)
    {
        _root = root;
        _dataDirectory = Path.Combine(root, "data");
        Port = port;
        _runAsPostgresUser = runAsPostgresUser;
    }

    /// <summary>The loopback port the server listens on.</summary>
    public int Port { get; }

    /// <summary>A connection string for the superuser's <c>postgres</c> database.</summary>
    public string ConnectionString => ConnectionStringFor("postgres");

    /// <summary>The server's log (<c>pg_ctl -l</c>), appended to by every start: what it did at start-up, crash recovery included.</summary>
    public string ServerLogPath => Path.Combine(_root, "server.log");

    /// <summary>Whether <c>initdb</c> and <c>pg_ctl</c> can be found on this machine.</summary>
    public static bool IsAvailable => Locate("initdb") is not null && Locate("pg_ctl") is not null;

    public string ConnectionStringFor(string database) =>
        $"Host=127.0.0.1;Port={Port};Username=postgres;Database={database};Maximum Pool Size=100;Include Error Detail=false";

    /// <summary>Creates and starts a new cluster. Throws when the server binaries are missing.</summary>
    /// <param name="durable">
    /// False turns <c>fsync</c> off: faster, and fine for a test database that is thrown away anyway. Keep it on
    /// for anything that measures or relies on durability.
    /// </param>
    /// <param name="cancellationToken">Cancels the start.</param>
    public static async Task<LocalPostgresCluster> StartAsync(bool durable = true, CancellationToken cancellationToken = default)
    {
        string initdb = Locate("initdb") ?? throw new InvalidOperationException(
            "initdb was not found on PATH or under /usr/lib/postgresql/*/bin. Install the PostgreSQL server " +
            "binaries or set ConnectionStrings__Operations to an existing server.");
        string pgCtl = Locate("pg_ctl") ?? throw new InvalidOperationException("pg_ctl was not found.");

        bool asPostgres = Environment.UserName == "root";
        DeleteAbandonedClusters(pgCtl, asPostgres);
        string root = Directory.CreateTempSubdirectory(FolderPrefix).FullName;
        int port = FreeLoopbackPort();
        var cluster = new LocalPostgresCluster(root, port, asPostgres);
        try
        {
            // Held for the life of this process: a folder whose lock can be taken belongs to no one.
            cluster._ownerLock = new FileStream(Path.Combine(root, OwnerLockFile), FileMode.Create, FileAccess.ReadWrite, FileShare.None);
            if (asPostgres)
            {
                await RunAsync("chown", ["-R", "postgres:postgres", root], false, cancellationToken).ConfigureAwait(false);
            }

            await cluster.RunToolAsync(initdb,
                ["-D", cluster._dataDirectory, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync", "--no-instructions"],
                cancellationToken).ConfigureAwait(false);

            cluster._serverOptions = $"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c max_connections=300 " +
                                     "-c shared_buffers=128MB -c log_min_messages=warning" + (durable ? "" : " -c fsync=off -c synchronous_commit=off");
            await cluster.StartServerAsync(cancellationToken).ConfigureAwait(false);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Stops the server (fast shutdown) and deletes the cluster's files.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stopped)
        {
            return;
        }

        _stopped = true;
        string? pgCtl = Locate("pg_ctl");
        if (pgCtl is not null && File.Exists(Path.Combine(_dataDirectory, "postmaster.pid")))
        {
            await RunToolAsync(pgCtl, ["-D", _dataDirectory, "-m", "fast", "-w", "-t", "30", "stop"], CancellationToken.None)
                .ConfigureAwait(false);
        }

        if (_ownerLock is not null)
        {
            await _ownerLock.DisposeAsync().ConfigureAwait(false);
        }

        Directory.Delete(_root, recursive: true);
    }

    /// <summary>Stops the server without deleting its files, as an outage would.</summary>
    public Task StopServerAsync(CancellationToken cancellationToken = default) => StopServerAsync(immediate: false, cancellationToken);

    /// <summary>
    /// Stops the server without deleting its files: with <paramref name="immediate"/>, as a crash would (every backend is
    /// killed at once, whatever it was committing, and the next start recovers from the WAL); else cleanly.
    /// </summary>
    public Task StopServerAsync(bool immediate, CancellationToken cancellationToken = default) =>
        RunToolAsync(Locate("pg_ctl")!, ["-D", _dataDirectory, "-m", immediate ? "immediate" : "fast", "-w", "-t", "30", "stop"], cancellationToken);

    /// <summary>Starts the server again after <see cref="StopServerAsync(bool, CancellationToken)"/>, on the same port and data.</summary>
    public Task StartServerAsync(CancellationToken cancellationToken = default) =>
        RunToolAsync(Locate("pg_ctl")!, ["-D", _dataDirectory, "-l", ServerLogPath, "-o", _serverOptions, "-w", "-t", "60", "start"],
            cancellationToken);

    private Task RunToolAsync(string tool, IReadOnlyList<string> arguments, CancellationToken cancellationToken) =>
        _runAsPostgresUser
            ? RunAsync("runuser", ["-u", "postgres", "--", tool, .. arguments], true, cancellationToken)
            : RunAsync(tool, arguments, true, cancellationToken);

    private static async Task RunAsync(string fileName, IReadOnlyList<string> arguments, bool neutralDirectory,
        CancellationToken cancellationToken)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            // The postgres OS user may not be allowed into the caller's working directory.
            WorkingDirectory = neutralDirectory ? Path.GetTempPath() : Environment.CurrentDirectory,
        };
        foreach (string argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var process = Process.Start(startInfo) ?? throw new InvalidOperationException($"Could not start {fileName}.");
        Task<string> output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        Task<string> error = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"{fileName} {string.Join(' ', arguments)} exited with {process.ExitCode}: {await error.ConfigureAwait(false)}{await output.ConfigureAwait(false)}");
        }
    }

    /// <summary>
    /// Stops and deletes earlier throwaway clusters whose owning process is gone (it was killed before it could
    /// clean up). The owner holds an exclusive lock on a file in the folder for as long as it lives; a lock that
    /// can be taken means the owner died, and the operating system released it.
    /// </summary>
    private static void DeleteAbandonedClusters(string pgCtl, bool asPostgres)
    {
        foreach (string folder in Directory.EnumerateDirectories(Path.GetTempPath(), FolderPrefix + "*"))
        {
            string lockPath = Path.Combine(folder, OwnerLockFile);
            try
            {
                using (new FileStream(lockPath, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
                {
                    // Taken: nobody owns this cluster any more.
                }

                string data = Path.Combine(folder, "data");
                if (File.Exists(Path.Combine(data, "postmaster.pid")))
                {
                    var stop = asPostgres
                        ? RunAsync("runuser", ["-u", "postgres", "--", pgCtl, "-D", data, "-m", "immediate", "-w", "stop"], true, CancellationToken.None)
                        : RunAsync(pgCtl, ["-D", data, "-m", "immediate", "-w", "stop"], true, CancellationToken.None);
                    stop.GetAwaiter().GetResult();
                }

                Directory.Delete(folder, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                // Owned by a live process, being created right now, or not ours: leave it.
            }
        }
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string? Locate(string tool) =>
        BinaryFolders.Select(folder => Path.Combine(folder, tool)).FirstOrDefault(File.Exists);

    private static string[] FindBinaryFolders()
    {
        var folders = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .ToList();
        if (Directory.Exists("/usr/lib/postgresql"))
        {
            folders.AddRange(Directory.GetDirectories("/usr/lib/postgresql")
                .OrderByDescending(d => d, StringComparer.Ordinal)
                .Select(d => Path.Combine(d, "bin")));
        }

        return [.. folders];
    }
}
