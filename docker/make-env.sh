#!/usr/bin/env bash
# Writes docker/.env (git-ignored) with generated secrets for compose.yaml, once; rerunning keeps it.
set -euo pipefail
env_file="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.env"
if [ -f "$env_file" ]; then
  echo "make-env.sh: $env_file exists; keeping it"
  exit 0
fi
secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
umask 077
cat > "$env_file" <<ENV
POSTGRES_PASSWORD=$(secret)
MINIO_ROOT_USER=multiplt
MINIO_ROOT_PASSWORD=$(secret)
AIRFLOW_JWT_SECRET=$(secret)
AIRFLOW_API_SECRET_KEY=$(secret)
AIRFLOW_FERNET_KEY=$(python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')
DOCKER_GID=$(stat -c %g /var/run/docker.sock 2>/dev/null || echo 999)
ENV
echo "make-env.sh: wrote $env_file"
