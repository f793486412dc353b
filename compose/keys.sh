#!/usr/bin/env sh
# Creates the keys docker-compose.yml mounts: the SFTP server's host key, the worker's
# client key, and a known_hosts that pins the host key (the worker never auto-accepts).
set -eu
cd "$(dirname "$0")"
mkdir -p keys ../var/compose-sftp/netsuite
[ -f keys/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -C sftp-host -f keys/ssh_host_ed25519_key
[ -f keys/client_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -C variance-sync -f keys/client_ed25519_key
printf 'sftp %s\n' "$(cut -d' ' -f1,2 keys/ssh_host_ed25519_key.pub)" > keys/known_hosts
chmod 600 keys/ssh_host_ed25519_key keys/client_ed25519_key
echo "keys written to $(pwd)/keys"
# The worker image runs as uid 1000 and must be able to read its private key.
[ "$(id -u)" = 1000 ] || echo "note: run 'sudo chown 1000 $(pwd)/keys/client_ed25519_key' so the worker can read it"
