[assembly: TestFramework("PollingApi.Testing.PostgresTestFramework", "PollingApi.Testing")]
