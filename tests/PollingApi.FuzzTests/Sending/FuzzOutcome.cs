namespace PollingApi.FuzzTests.Sending;

/// <summary>How a request ended, from the client's side.</summary>
internal enum OutcomeKind
{
    /// <summary>At least one HTTP answer came back.</summary>
    Answered,

    /// <summary>The server closed (or reset) the connection without an answer.</summary>
    ClosedWithoutAnswer,

    /// <summary>No answer within the per-request timeout.</summary>
    TimedOut,

    /// <summary>A raw-socket request the suite closed or reset itself, without waiting for an answer.</summary>
    NotAwaited,

    /// <summary>HttpClient would not send it (a generator's mistake, not the API's); it does not count as sent.</summary>
    RefusedByClient,
}

/// <summary>One HTTP answer: its status, the media type it declared, and its body.</summary>
internal sealed record FuzzAnswer(int Status, string? MediaType, byte[] Body);

/// <summary>
/// What came back for one request: usually one answer; a raw socket can get several (pipelined requests) or none.
/// <see cref="Detail"/> says why there was no answer.
/// </summary>
internal sealed record FuzzOutcome(OutcomeKind Kind, IReadOnlyList<FuzzAnswer> Answers, string? Detail, TimeSpan Elapsed)
{
    public static FuzzOutcome Refused(string detail) => new(OutcomeKind.RefusedByClient, [], detail, TimeSpan.Zero);
}
