#!/usr/bin/env sh
# Creates what docker-compose.yml mounts: the SFTP server's host key, the worker's client
# key, a known_hosts that pins the host key (the worker never auto-accepts), and `.env`
# with the uid and gid the SFTP user and the worker run as, and Grafana's admin password.
# Run it again at will: it keeps the keys and the password it made before.
set -eu
cd "$(dirname "$0")"
mkdir -p keys ../var/compose-sftp/netsuite
[ -f keys/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -C sftp-host -f keys/ssh_host_ed25519_key
[ -f keys/client_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -C variance-sync -f keys/client_ed25519_key
# Pinned under both names: the worker reaches the server as `sftp` inside the compose
# network, commands on the host (netsuite-sim, reconcile) as localhost:2222.
host_key="$(cut -d' ' -f1,2 keys/ssh_host_ed25519_key.pub)"
printf 'sftp %s\n[localhost]:2222 %s\n' "$host_key" "$host_key" > keys/known_hosts
chmod 600 keys/ssh_host_ed25519_key keys/client_ed25519_key
# The worker runs as this user, so it reads the client key this user owns (mode 600), and
# the SFTP user writes the folder mounted from here as this user. root's uid cannot be an
# SFTP user's: for root both run as 1000, which then owns the folder and the client key
# (root still reads both).
uid="$(id -u)" gid="$(id -g)"
if [ "$uid" = 0 ]; then
  uid=1000 gid=1000
  chown "$uid:$gid" ../var/compose-sftp/netsuite keys/client_ed25519_key
fi
# Grafana's admin password: made once, kept in .env (which git ignores), never printed.
password="$(sed -n 's/^GRAFANA_ADMIN_PASSWORD=//p' ../.env 2>/dev/null || true)"
[ -n "$password" ] || password="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
umask 077
printf 'HOST_UID=%s\nHOST_GID=%s\nGRAFANA_ADMIN_PASSWORD=%s\n' "$uid" "$gid" "$password" > ../.env
chmod 600 ../.env
echo "keys written to $(pwd)/keys; the worker and the SFTP user run as uid $uid, gid $gid (../.env)"
