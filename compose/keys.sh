#!/usr/bin/env sh
# Creates the keys docker-compose.yml mounts: the SFTP server's host key, the worker's
# client key, and a known_hosts that pins the host key (the worker never auto-accepts).
set -eu
cd "$(dirname "$0")"
mkdir -p keys ../var/compose-sftp/netsuite
[ -f keys/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -C sftp-host -f keys/ssh_host_ed25519_key
[ -f keys/client_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -C variance-sync -f keys/client_ed25519_key
# Pinned under both names: the worker reaches the server as `sftp` inside the compose
# network, commands on the host (netsuite-sim, reconcile) as localhost:2222.
host_key="$(cut -d' ' -f1,2 keys/ssh_host_ed25519_key.pub)"
printf 'sftp %s\n[localhost]:2222 %s\n' "$host_key" "$host_key" > keys/known_hosts
# The SFTP user writes the folder mounted from here, so it gets this user's uid and gid
# (root's cannot be an SFTP user's: then uid 1000 gets the folder).
uid="$(id -u)" gid="$(id -g)"
if [ "$uid" = 0 ]; then uid=1000 gid=1000; chown "$uid:$gid" ../var/compose-sftp/netsuite; fi
printf 'SFTP_UID=%s\nSFTP_GID=%s\n' "$uid" "$gid" > ../.env
chmod 600 keys/ssh_host_ed25519_key keys/client_ed25519_key
echo "keys written to $(pwd)/keys"
# The worker image runs as uid 1000 and must be able to read its private key.
[ "$(id -u)" = 1000 ] || echo "note: run 'sudo chown 1000 $(pwd)/keys/client_ed25519_key' so the worker can read it"
