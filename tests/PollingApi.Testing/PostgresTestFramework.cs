using System.Reflection;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace PollingApi.Testing;

/// <summary>
/// xunit v2's default framework plus one step at the end of the run: stop the shared throwaway PostgreSQL
/// cluster (xunit v2 has no assembly fixture). The step runs before the run reports that it finished, so the
/// test host is still alive to delete the cluster's files.
/// </summary>
public sealed class PostgresTestFramework(IMessageSink messageSink) : XunitTestFramework(messageSink)
{
    protected override ITestFrameworkExecutor CreateExecutor(AssemblyName assemblyName) =>
        new Executor(assemblyName, SourceInformationProvider, DiagnosticMessageSink);

    private sealed class Executor(AssemblyName assemblyName, ISourceInformationProvider sourceInformationProvider,
        IMessageSink diagnosticMessageSink) : XunitTestFrameworkExecutor(assemblyName, sourceInformationProvider, diagnosticMessageSink)
    {
        // async void is the signature xunit's own executor overrides.
        protected override async void RunTestCases(IEnumerable<IXunitTestCase> testCases, IMessageSink executionMessageSink,
            ITestFrameworkExecutionOptions executionOptions)
        {
            using var runner = new AssemblyRunner(TestAssembly, testCases, DiagnosticMessageSink, executionMessageSink, executionOptions);
            await runner.RunAsync();
        }
    }

    private sealed class AssemblyRunner(ITestAssembly testAssembly, IEnumerable<IXunitTestCase> testCases,
        IMessageSink diagnosticMessageSink, IMessageSink executionMessageSink, ITestFrameworkExecutionOptions executionOptions)
        : XunitTestAssemblyRunner(testAssembly, testCases, diagnosticMessageSink, executionMessageSink, executionOptions)
    {
        protected override async Task BeforeTestAssemblyFinishedAsync()
        {
            try
            {
                await PostgresServer.StopAsync();
            }
            catch (InvalidOperationException ex)
            {
                // pg_ctl failed: every test has run, so report it without failing the run.
                DiagnosticMessageSink.OnMessage(new DiagnosticMessage($"Stopping the test PostgreSQL cluster failed: {ex.Message}"));
            }

            await base.BeforeTestAssemblyFinishedAsync();
        }
    }
}
