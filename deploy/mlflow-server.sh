#!/bin/sh
# The MLflow tracking server + registry with MLflow's basic-auth app, for `make stack` and docker-compose.
#
# MLflow's auth app reads its settings from an ini file (MLFLOW_AUTH_CONFIG_PATH); the file holds the
# auth database URL (a secret), so it is written here from the environment, mode 600, at every start.
# The admin user and its password come from MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD
# (read by MLflow itself; used only when the auth database has no admin yet).
# Arguments: the `mlflow server` options (backend store, artifacts, host, port...).
set -eu
: "${MLFLOW_AUTH_CONFIG_PATH:?set MLFLOW_AUTH_CONFIG_PATH (where to write the auth ini)}"
: "${MLFLOW_AUTH_DATABASE_URI:?set MLFLOW_AUTH_DATABASE_URI (the auth app's user database)}"
: "${MLFLOW_AUTH_ADMIN_USERNAME:?set MLFLOW_AUTH_ADMIN_USERNAME}"
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?set MLFLOW_AUTH_ADMIN_PASSWORD}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY}"
umask 077
mkdir -p "$(dirname "$MLFLOW_AUTH_CONFIG_PATH")"
printf '[mlflow]\ndefault_permission = NO_PERMISSIONS\ndatabase_uri = %s\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n' \
  "$MLFLOW_AUTH_DATABASE_URI" > "$MLFLOW_AUTH_CONFIG_PATH"
exec mlflow server --app-name basic-auth "$@"
