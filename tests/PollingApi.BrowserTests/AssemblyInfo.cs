[assembly: TestFramework("PollingApi.Testing.PostgresTestFramework", "PollingApi.Testing")]

// One browser and one API for the whole suite: the classes share them through a collection and run one after another.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
