namespace PollingApi.Diagnostics;

/// <summary>The <c>Diagnostics</c> configuration section.</summary>
public sealed class DiagnosticsOptions
{
    public const string SectionName = "Diagnostics";

    /// <summary>Whether <c>POST /v1/diagnostics/sleep</c> is offered. On by default; switch it off where no one should load-test.</summary>
    public bool Enabled { get; set; } = true;
}
