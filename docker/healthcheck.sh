#!/bin/sh
# Docker HEALTHCHECK: the ingestion API answers GET /healthz; workers have no HTTP port.
[ "${SERVICE:-}" = "ingestion" ] || exit 0
exec node -e '
fetch(`http://127.0.0.1:${process.env.PORT || 8080}/healthz`, { signal: AbortSignal.timeout(4000) })
  .then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1));
'
