# syntax=docker/dockerfile:1
#
# PollingApi container image.
#
# REQUIRED at run time: ConnectionStrings__Operations (a PostgreSQL connection string), e.g.
#   docker run -p 8080:8080 \
#     -e ConnectionStrings__Operations="Host=db;Username=pollingapi;Password=pollingapi;Database=pollingapi" \
#     pollingapi
# Without it the app tries to start a local PostgreSQL cluster, which cannot work here (the image
# has no PostgreSQL binaries), so it refuses to start. See compose.yaml for a ready-made setup.

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src

# Restore first, from the project files only, so the package layer is cached across source edits.
COPY global.json Directory.Build.props Directory.Packages.props BannedSymbols.txt ./
COPY src/PollingApi/PollingApi.csproj src/PollingApi/
COPY src/PollingApi.Operations/PollingApi.Operations.csproj src/PollingApi.Operations/
COPY src/PollingApi.LocalPostgres/PollingApi.LocalPostgres.csproj src/PollingApi.LocalPostgres/
RUN dotnet restore src/PollingApi/PollingApi.csproj

COPY src/ src/
RUN dotnet publish src/PollingApi/PollingApi.csproj -c Release -o /app --no-restore

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
WORKDIR /app
COPY --from=build /app ./
ENV ASPNETCORE_HTTP_PORTS=8080
EXPOSE 8080
# Non-root "app" user provided by the .NET images (APP_UID is set by the base image).
USER $APP_UID
ENTRYPOINT ["dotnet", "PollingApi.dll"]
