#!/bin/sh
# Starts nginx in front of the replicas that are ready, and keeps that list current.
#
# Replicas come and go (scaling, restarts, a replaced container gets a new address), and a
# replica being stopped must leave nginx's list *before* it closes its connections: otherwise
# nginx may send a request on a keep-alive connection just as the replica closes it, and a POST
# is not resent (the client gets a 502). So once a second this script asks every address of
# the service name (Docker's DNS) for /readyz, which answers 503 from the moment a replica is
# asked to stop (it keeps serving for CHAT_DRAIN_PAUSE), and reloads nginx when the set of
# ready replicas changes; a reload lets requests in flight finish on the old workers.
#
# nginx's own `resolve` server parameter (open-source nginx >= 1.27.3, so the official 1.28
# image) re-resolves names but knows nothing of readiness, and Debian bookworm's nginx (1.22.1,
# the local image where no registry answers) refuses it: this works the same on both. Needs
# bash, getent and coreutils, as both Debian-based images have (not the alpine variants).
set -eu
host=${CHAT_UPSTREAM_HOST:-chat}
port=${CHAT_UPSTREAM_PORT:-8000}
conf=/etc/nginx/chat/nginx.conf
servers=/etc/nginx/chat-upstream.conf

ready() {
  for address in $(getent ahostsv4 "$host" | awk '{ print $1 }' | sort -u); do
    if timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "GET /readyz HTTP/1.0\r\n\r\n" >&3 &&
      head -n 1 <&3' "$address" "$port" 2>/dev/null | grep -q ' 200 '; then
      printf '%s ' "$address"
    fi
  done
}

write_servers() {
  for address in $1; do echo "server $address:$port max_fails=1 fail_timeout=5s;"; done >"$servers"
}

known=$(ready)
until [ -n "$known" ]; do
  echo "start.sh: waiting for a ready replica of $host:$port" >&2
  sleep 1
  known=$(ready)
done
write_servers "$known"
echo "start.sh: $(nginx -v 2>&1), replicas $known" >&2
(
  while sleep 1; do
    now=$(ready)
    # None ready (all restarting at once): keep the last list rather than an empty upstream.
    if [ -n "$now" ] && [ "$now" != "$known" ]; then
      write_servers "$now"
      if nginx -t -q -c "$conf" && nginx -s reload -c "$conf"; then
        echo "start.sh: replicas now $now" >&2
        known=$now
      fi
    fi
  done
) &
exec nginx -c "$conf" -g 'daemon off;'
