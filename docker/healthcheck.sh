#!/bin/sh
# The container health check (Docker's HEALTHCHECK, and ECS's healthCheck in infra/lib):
# - the ingestion API answers GET /healthz on its port;
# - a queue worker answers GET /livez on HEALTH_PORT (loopback only) while every poll loop of it
#   is turning: 503 once one has been silent past its bound, so ECS replaces the wedged task;
# - anything else (HEALTH_PORT unset) has nothing to ask and passes.
if [ "${SERVICE:-}" = "ingestion" ]; then
  url="http://127.0.0.1:${PORT:-8080}/healthz"
elif [ -n "${HEALTH_PORT:-}" ]; then
  url="http://127.0.0.1:${HEALTH_PORT}/livez"
else
  exit 0
fi
exec node -e '
fetch(process.argv[1], { signal: AbortSignal.timeout(4000) })
  .then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1));
' "$url"
