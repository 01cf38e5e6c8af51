#!/bin/sh
# Runs once, when the PostgreSQL volume is created: a role and a database for the
# bridge instances, and for Synapse (which needs the C collation). The passwords
# come from the environment (compose.yaml, from .env).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v zapbridge_password="$ZAPBRIDGE_DB_PASSWORD" \
  -v synapse_password="$SYNAPSE_DB_PASSWORD" <<'SQL'
CREATE ROLE zapbridge LOGIN PASSWORD :'zapbridge_password';
CREATE DATABASE zapbridge OWNER zapbridge;
CREATE ROLE synapse LOGIN PASSWORD :'synapse_password';
CREATE DATABASE synapse OWNER synapse
  ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
SQL
