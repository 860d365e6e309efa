using System.Net;
using Npgsql;
using PollingApi.Operations.Handlers;
using PollingApi.Tests.Infrastructure;

namespace PollingApi.Tests;

/// <summary>The ledger through the API: accounts, transfers, and the double-entry rows behind them.</summary>
public sealed class LedgerTests(PollingApiFactory factory) : IClassFixture<PollingApiFactory>
{
    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task OpeningAnAccountBooksItsOpeningBalanceAndTheAccountCanBeRead()
    {
        var opened = await WaitAsync("/v1/accounts", """{"currency": "EUR", "openingBalance": 10000}""");

        Assert.Equal("succeeded", opened.Json.GetProperty("status").GetString());
        Assert.Equal("accounts.open", opened.Json.GetProperty("kind").GetString());
        var result = opened.Json.GetProperty("result");
        var account = result.GetProperty("accountId").GetGuid();
        Assert.Equal(10000, result.GetProperty("balance").GetInt64());

        var read = await _client.FetchAsync($"/v1/accounts/{account}");
        Assert.Equal(HttpStatusCode.OK, read.Status);
        Assert.Equal("EUR", read.Json.GetProperty("currency").GetString());
        Assert.Equal(10000, read.Json.GetProperty("balance").GetInt64());
        Assert.Equal(10000, await ScalarAsync<long>("SELECT sum(amount)::bigint FROM ledger_entries WHERE account_id = @id", account));
    }

    [Fact]
    public async Task ATransferWritesExactlyOneDebitAndOneCreditAndMovesTheBalances()
    {
        var from = await OpenAsync("EUR", 10000);
        var to = await OpenAsync("EUR", 500);

        var transfer = await WaitAsync("/v1/transfers", $$"""{"from": "{{from}}", "to": "{{to}}", "amount": 2500, "currency": "EUR"}""");

        Assert.Equal("succeeded", transfer.Json.GetProperty("status").GetString());
        var id = transfer.Json.GetProperty("id").GetGuid();
        Assert.Equal(id, transfer.Json.GetProperty("result").GetProperty("transferId").GetGuid());
        Assert.Equal(7500, await BalanceAsync(from));
        Assert.Equal(3000, await BalanceAsync(to));
        var entries = await EntriesAsync(id);
        Assert.Equal([(from, -2500L), (to, 2500L)], entries.OrderBy(e => e.Amount).ToList());
    }

    [Theory]
    [InlineData("insufficient", "urn:pollingapi:problem:insufficient-funds")]
    [InlineData("unknown", "urn:pollingapi:problem:unknown-account")]
    [InlineData("currency", "urn:pollingapi:problem:currency-mismatch")]
    [InlineData("same", "urn:pollingapi:problem:same-account")]
    public async Task ATransferThatCannotBeBookedFailsAtOnceWithItsOwnTypeAndMovesNothing(string kind, string type)
    {
        var from = await OpenAsync("EUR", 1000);
        var to = await OpenAsync(kind == "currency" ? "USD" : "EUR", 0);
        string body = kind switch
        {
            "insufficient" => $$"""{"from": "{{from}}", "to": "{{to}}", "amount": 1001, "currency": "EUR"}""",
            "unknown" => $$"""{"from": "{{from}}", "to": "{{Guid.CreateVersion7()}}", "amount": 1, "currency": "EUR"}""",
            "currency" => $$"""{"from": "{{from}}", "to": "{{to}}", "amount": 1, "currency": "EUR"}""",
            _ => $$"""{"from": "{{from}}", "to": "{{from}}", "amount": 1, "currency": "EUR"}""",
        };

        var transfer = await WaitAsync("/v1/transfers", body);

        Assert.Equal("failed", transfer.Json.GetProperty("status").GetString());
        Assert.Equal(1, transfer.Json.GetProperty("attempts").GetInt32());
        Assert.Equal(type, transfer.Json.GetProperty("error").GetProperty("type").GetString());
        Assert.Empty(await EntriesAsync(transfer.Json.GetProperty("id").GetGuid()));
        Assert.Equal(1000, await BalanceAsync(from));
        // A business failure is an outcome, not a fault: nothing about it is logged as a warning or with a stack trace.
        Assert.DoesNotContain(factory.Logs.Entries, log => log.Exception is PermanentOperationFailureException);
    }

    [Fact]
    public async Task ConcurrentTransfersKeepTheTotalAndNeverOverdraw()
    {
        var a = await OpenAsync("EUR", 1000);
        var b = await OpenAsync("EUR", 1000);
        var submits = Enumerable.Range(0, 40).Select(i => i % 2 == 0
            ? $$"""{"from": "{{a}}", "to": "{{b}}", "amount": 150, "currency": "EUR"}"""
            : $$"""{"from": "{{b}}", "to": "{{a}}", "amount": 100, "currency": "EUR"}""");

        var results = await Task.WhenAll(submits.Select(body => WaitAsync("/v1/transfers", body)));

        Assert.All(results, r => Assert.True(r.Json.GetProperty("done").GetBoolean()));
        Assert.Equal(2000, await BalanceAsync(a) + await BalanceAsync(b));
        Assert.True(await BalanceAsync(a) >= 0 && await BalanceAsync(b) >= 0);
        foreach (var result in results)
        {
            var entries = await EntriesAsync(result.Json.GetProperty("id").GetGuid());
            Assert.Equal(result.Json.GetProperty("status").GetString() == "succeeded" ? 2 : 0, entries.Count);
        }
    }

    [Theory]
    [InlineData("""{"currency": "eur", "openingBalance": 1}""", "currency")]
    [InlineData("""{"currency": "EUR", "openingBalance": -1}""", "openingBalance")]
    public async Task AnInvalidAccountAnswers400(string body, string field)
    {
        var response = await _client.SendAsync(HttpMethod.Post, "/v1/accounts", PollingApiClient.JsonBody(body));
        var problem = ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, "urn:pollingapi:problem:validation-failed", "/v1/accounts");
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _));
    }

    [Fact]
    public async Task ReadingAnUnknownOrMalformedAccountAnswers404Or400()
    {
        var unknown = await _client.FetchAsync($"/v1/accounts/{Guid.CreateVersion7()}");
        ProblemAssert.IsProblem(unknown, HttpStatusCode.NotFound, "urn:pollingapi:problem:account-not-found", "/v1/accounts/");
        var malformed = await _client.FetchAsync("/v1/accounts/x");
        ProblemAssert.IsProblem(malformed, HttpStatusCode.BadRequest, "urn:pollingapi:problem:invalid-account-id", "/v1/accounts/x");
    }

    private async Task<ApiResponse> WaitAsync(string route, string json)
    {
        var response = await _client.SendAsync(HttpMethod.Post, route, PollingApiClient.JsonBody(json),
            request => request.Headers.TryAddWithoutValidation("Prefer", "wait=30"));
        Assert.True(response.Status == HttpStatusCode.OK, $"Expected the operation to finish within the wait: {response}");
        return response;
    }

    private async Task<Guid> OpenAsync(string currency, long balance)
    {
        var opened = await WaitAsync("/v1/accounts", $$"""{"currency": "{{currency}}", "openingBalance": {{balance}}}""");
        return opened.Json.GetProperty("result").GetProperty("accountId").GetGuid();
    }

    private async Task<long> BalanceAsync(Guid account) =>
        (await _client.FetchAsync($"/v1/accounts/{account}")).Json.GetProperty("balance").GetInt64();

    private async Task<List<(Guid Account, long Amount)>> EntriesAsync(Guid operation)
    {
        await using var connection = new NpgsqlConnection(factory.DatabaseConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT account_id, amount FROM ledger_entries WHERE operation_id = @id", connection);
        command.Parameters.AddWithValue("id", operation);
        await using var reader = await command.ExecuteReaderAsync();
        var entries = new List<(Guid, long)>();
        while (await reader.ReadAsync())
        {
            entries.Add((reader.GetGuid(0), reader.GetInt64(1)));
        }

        return entries;
    }

    private async Task<T> ScalarAsync<T>(string sql, Guid id)
    {
        await using var connection = new NpgsqlConnection(factory.DatabaseConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.AddWithValue("id", id);
        return (T)(await command.ExecuteScalarAsync())!;
    }
}
