#!/usr/bin/env bash
# Creates the three databases of a deployment on first start of the postgres container,
# and the scoring API's login: creditrisk_api_user in the NOLOGIN role creditrisk_api.
# Migration 0008 (airflow-init's `creditrisk db upgrade`) grants that role INSERT on
# decision_log and SELECT on customer_features, nothing else. Docker runs this only on an
# empty data volume: on an existing one, run the block below by hand once (same SQL).
set -euo pipefail
for db in creditrisk airflow mlflow; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -tc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -c "CREATE DATABASE \"$db\""
done
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v pw="$CREDITRISK_API_DB_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE creditrisk_api NOLOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'creditrisk_api') \gexec
SELECT 'CREATE ROLE creditrisk_api_user LOGIN IN ROLE creditrisk_api'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'creditrisk_api_user') \gexec
ALTER ROLE creditrisk_api_user PASSWORD :'pw';
SQL
