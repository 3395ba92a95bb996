#!/bin/sh
# Runs under tini, then replaces itself with the service (exec), so signals go straight to Node.
#
# On ECS the database password arrives from Secrets Manager as DB_PASSWORD, next to DB_HOST,
# DB_PORT, DB_NAME and DB_USERNAME; the services read one DATABASE_URL, built here. The
# generated password has no URL-reserved characters (infra/lib/database.ts), so it needs no
# escaping. Anywhere DATABASE_URL is already set (compose, a laptop), it is used as is.
set -eu

if [ -z "${DATABASE_URL:-}" ] && [ -n "${DB_HOST:-}" ]; then
  : "${DB_USERNAME:?DB_USERNAME is required with DB_HOST}"
  : "${DB_PASSWORD:?DB_PASSWORD is required with DB_HOST}"
  # Aurora requires TLS; verify the server against the RDS CA bundle baked into the image.
  DATABASE_URL="postgresql://${DB_USERNAME}:${DB_PASSWORD}@${DB_HOST}:${DB_PORT:-5432}/${DB_NAME:-docpipe}?${DB_SSL_PARAMS:-sslmode=verify-full&sslrootcert=/etc/ssl/certs/rds-global-bundle.pem}"
  export DATABASE_URL
  unset DB_PASSWORD
fi

exec "$@"
