using System.ComponentModel;
using Microsoft.AspNetCore.Http.HttpResults;
using PollingApi.Operations;
using PollingApi.Operations.Http;
using PollingApi.Operations.Security;

namespace PollingApi.Ledger;

/// <summary>An account and its balance.</summary>
[Description("An account and its current balance.")]
public sealed record AccountResource(
    [property: Description("The account's id.")] Guid Id,
    [property: Description("ISO 4217 currency code.")] string Currency,
    [property: Description("The balance in minor units (cents).")] long Balance,
    [property: Description("When the account was opened.")] DateTime CreatedAt);

/// <summary>Reads accounts; opening accounts and transfers are commands (see <see cref="LedgerRegistration"/>).</summary>
public static class AccountsApi
{
    public static IEndpointRouteBuilder MapAccounts(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/v1/accounts/{id}", GetAccountAsync)
            .WithTags("Ledger")
            .RequireScope(OperationScopes.Read)
            .WithName("GetAccount")
            .WithSummary("Get an account's balance")
            .WithDescription("The account's currency and current balance in minor units. Accounts are opened with `POST /v1/accounts`.")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status200OK, "The account."))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status400BadRequest, "The id is not a UUID (invalid-account-id)."))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status404NotFound, "No account has this id (account-not-found)."))
            .WithMetadata(new ResponseDocumentation(StatusCodes.Status503ServiceUnavailable,
                "The database cannot be reached: retry after Retry-After seconds.", ResponseHeaders.RetryAfter));
        return endpoints;
    }

    internal static async Task<Results<Ok<AccountResource>, ProblemHttpResult>> GetAccountAsync(string id, HttpContext http, LedgerStore ledger,
        CancellationToken cancellationToken)
    {
        if (!Guid.TryParseExact(id, "D", out var accountId))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, type: ProblemTypes.Prefix + "invalid-account-id",
                title: "The account id is malformed.", detail: "An account id is a UUID such as 0193a5e2-7c4b-7d2e-9f00-5b1c2d3e4f50.");
        }

        // Another tenant's account answers 404, exactly like one that does not exist.
        var account = await ledger.FindAsync(accountId, http.User.GetOperationCaller().OwnerFilter, cancellationToken).ConfigureAwait(false);
        return account is null
            ? TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, type: LedgerProblemTypes.AccountNotFound,
                title: "The account does not exist.", detail: $"There is no account {accountId}.")
            : TypedResults.Ok(new AccountResource(account.Id, account.Currency, account.Balance, account.CreatedAt));
    }
}
